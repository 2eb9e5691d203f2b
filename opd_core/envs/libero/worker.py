"""An environment worker process: runs LIBERO episodes on request, one simulator per task.

Started by `pool.LiberoVecEnv` as `python -m opd_core.envs.libero.worker FD IMAGE_SIZE CAMERAS`, where FD is its end
of a socket pair inherited from the parent and CAMERAS is 2 (agent view and wrist), 1 (agent view) or 0 (none).
Messages are `(command, payload)` tuples:
- `("run", [op, ...])`, answered by `("ok", [result, ...])` in the same order. An op is
  `("reset", suite, task, init_id)` or `("step", suite, task, slot_state, action)`; a result is the episode's
  observation dict (see `sim.TaskSim.observation`, with the new `slot_state`) or `("error", message)` when that
  op failed (the others go on);
- `("close", None)`: exit.
The worker keeps no episode state of its own (the parent sends each episode's slot state with every step), so a
replacement worker continues any episode exactly. Simulators are built lazily, on the first op for a task, and
kept while in use; at most `OPD_LIBERO_IDLE_SIMS` (default 2) unused ones stay built for later episodes. The
process exits when the parent goes away (end of file on the socket).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection

IDLE_SIMS = int(os.environ.get("OPD_LIBERO_IDLE_SIMS", "2"))


class WorkerState:
    def __init__(self, image_size: int, cameras: int):
        self.image_size, self.cameras = image_size, cameras
        self.sims: OrderedDict[str, object] = OrderedDict()

    def simulator(self, suite: str, task: str):
        sim = self.sims.get(task)
        if sim is None:
            from opd_core.envs.libero.sim import TaskSim

            sim = TaskSim(suite, task, image_size=self.image_size, cameras=self.cameras > 0, wrist=self.cameras > 1)
            self.sims[task] = sim
        self.sims.move_to_end(task)
        return sim

    def trim(self, in_use: set[str]) -> None:
        """Close the least recently used simulators that no current episode needs, beyond IDLE_SIMS."""
        idle = [task for task in self.sims if task not in in_use]
        for task in idle[: max(0, len(idle) - IDLE_SIMS)]:
            self.sims.pop(task).close()

    def discard(self, task: str) -> None:
        sim = self.sims.pop(task, None)
        if sim is not None:
            sim.close()

    def run(self, op: tuple):
        kind = op[0]
        if kind == "reset":
            _, suite, task, init_id = op
            return self.simulator(suite, task).reset(int(init_id))
        if kind == "step":
            _, suite, task, slot_state, action = op
            return self.simulator(suite, task).step(slot_state, action)
        raise ValueError(f"unknown operation {kind!r}")


def serve(conn: Connection, image_size: int, cameras: int, state: WorkerState | None = None) -> None:
    """Answer requests until "close" or end of file; `state` builds the simulators (default: LIBERO's)."""
    state = state or WorkerState(image_size, cameras)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):
            break
        if command == "close":
            break
        if command != "run":
            conn.send(("error", f"unknown command {command!r}"))
            continue
        if payload and all(op[0] == "reset" for op in payload):
            state.trim({op[2] for op in payload})
        results = []
        for op in payload:
            try:
                results.append(state.run(op))
            except Exception as exc:  # noqa: BLE001 - one episode's failure is reported, the others go on
                traceback.print_exc(file=sys.stderr)
                state.discard(op[2])  # its simulator may be broken: the retry builds a fresh one
                results.append(("error", f"{type(exc).__name__}: {exc}"))
        try:
            conn.send(("ok", results))
        except (BrokenPipeError, OSError):
            break
    for sim in state.sims.values():
        sim.close()


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it closes or kills us
    fd, image_size, cameras = int(argv[0]), int(argv[1]), int(argv[2])
    conn = Connection(fd)
    try:
        import logging

        logging.getLogger("robosuite").setLevel(logging.ERROR)
        import libero.libero  # noqa: F401  (fail at start, not at the first reset)
    except Exception as exc:  # noqa: BLE001
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    serve(conn, image_size, cameras)


if __name__ == "__main__":
    main(sys.argv[1:])
