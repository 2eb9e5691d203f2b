"""An ALOHA environment worker process, run under the extra's interpreter (`.venv-aloha/bin/python`).

Started by `pool.AlohaVecEnv` as `python -m opd_core.envs.aloha.worker FD IMAGE_SIZE CAMERAS`, with the checkout on
PYTHONPATH; it speaks the LIBERO worker's protocol (`opd_core.envs.libero.worker`: ops `("reset", suite, task,
init_id)` / `("step", suite, task, slot_state, action)`, one observation dict of numpy arrays per op) and keeps no
episode state of its own. It imports numpy, MuJoCo, dm_control and gym-aloha, never torch.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection

from opd_core.envs.libero.worker import WorkerState, serve


class AlohaWorkerState(WorkerState):
    def simulator(self, suite: str, task: str):
        sim = self.sims.get(task)
        if sim is None:
            from opd_core.envs.aloha.sim import AlohaTaskSim

            sim = AlohaTaskSim(task, image_size=self.image_size, cameras=self.cameras > 0)
            self.sims[task] = sim
        self.sims.move_to_end(task)
        return sim


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it closes or kills us
    fd, image_size, cameras = int(argv[0]), int(argv[1]), int(argv[2])
    conn = Connection(fd)
    try:
        import opd_core.envs.aloha.sim  # noqa: F401  (fail at start, not at the first reset)
    except Exception as exc:  # noqa: BLE001
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    serve(conn, image_size, cameras, AlohaWorkerState(image_size, cameras))


if __name__ == "__main__":
    main(sys.argv[1:])
