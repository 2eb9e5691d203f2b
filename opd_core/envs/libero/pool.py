"""`LiberoVecEnv`: many LIBERO episodes stepped in parallel by a pool of environment worker processes.

At each reset the episodes are dealt to the P workers in contiguous groups of the same task, so that a worker
needs few simulators (one per task, about 0.75-2 GB each; episodes of a task share it through their slot states,
see sim.TaskSim). Workers start at the first reset and build their simulators lazily (see worker.py). The parent
keeps every episode's slot state and sends it with each step, so workers hold no episode state. Every request has
a deadline: a worker that dies (end of file) or does not answer in time (hung) is killed and replaced, and each
episode it was running is retried: a reset is redone, a step is replayed exactly from the slot state saved after
the previous step. An episode that keeps failing (`max_retries`) is marked failed:
it ends with success False and a frozen observation, and the failure is recorded in `events`, so a run never
hangs and never silently loses an episode.

An episode that succeeded is frozen too (LIBERO's `done`): later steps return its final observation and success
True without simulating it, until the next reset.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from multiprocessing import Pipe
from pathlib import Path

import numpy as np

from opd_core.envs.base import Observation
from opd_core.envs.libero.sim import PRIV
from opd_core.envs.libero.tasks import MAX_EPISODE_STEPS, catalog
from opd_core.errors import EnvironmentUnavailable


@dataclass
class LiberoObservation(Observation):
    """An `Observation` that also carries the wrist camera (`state` holds the privileged state, see sim.PRIV)."""

    wrist: np.ndarray | None = None
    """Wrist (eye-in-hand) RGB, uint8 [N, H, W, 3], flipped like the agent view."""

    def take(self, index: np.ndarray) -> LiberoObservation:
        return LiberoObservation(
            self.image[index],
            self.proprio[index],
            [self.instructions[i] for i in index],
            state=None if self.state is None else self.state[index],
            wrist=None if self.wrist is None else self.wrist[index],
        )

    def frame(self, index: int) -> np.ndarray:
        """Agent view | wrist side by side (the agent view alone without a wrist camera)."""
        if self.wrist is None:
            return self.image[index]
        return np.concatenate([self.image[index], self.wrist[index]], axis=1)


class WorkerFailure(Exception):
    """A worker died, hung past its deadline, or answered nonsense."""


def _env_default(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class _Worker:
    """One environment process and its end of the socket pair."""

    def __init__(
        self,
        index: int,
        image_size: int,
        cameras: int,
        start_timeout: float,
        *,
        python: str | None = None,
        module: str = "opd_core.envs.libero.worker",
        log_name: str = "opd-libero",
        extra_env: dict[str, str] | None = None,
    ):
        """`python`: the interpreter of the worker (default this one; the ALOHA extra runs its own venv's),
        `module`: the worker's entry point, run as `python -m module FD IMAGE_SIZE CAMERAS`."""
        self.index = index
        parent, child = Pipe(duplex=True)
        log_dir = Path(tempfile.gettempdir()) / log_name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"worker-{os.getpid()}-{index}-{time.time_ns()}.log"
        env = dict(os.environ)
        for name, value in (
            ("MUJOCO_GL", "egl"),
            ("OMP_NUM_THREADS", "1"),
            ("MKL_NUM_THREADS", "1"),
            ("OPENBLAS_NUM_THREADS", "1"),
            ("NUMBA_NUM_THREADS", "1"),
            ("LP_NUM_THREADS", "1"),
        ):
            env.setdefault(name, value)
        if env["MUJOCO_GL"] in ("egl", "osmesa"):
            env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
        env.update(extra_env or {})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    python or sys.executable,
                    "-m",
                    module,
                    str(child.fileno()),
                    str(image_size),
                    str(cameras),
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        child.close()
        self.conn = parent
        self.start_timeout = start_timeout
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        if self.ready:
            return
        reply = self._receive(self.start_timeout, "start")
        if reply[0] == "failed":
            self.kill()
            raise EnvironmentUnavailable(f"a LIBERO worker could not start: {reply[1]}")
        if reply[0] != "ready":
            raise WorkerFailure(f"unexpected first message {reply[0]!r}")
        self.ready = True

    def send(self, ops: list[tuple]) -> None:
        try:
            self.conn.send(("run", ops))
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise WorkerFailure(f"worker {self.index} (pid {self.pid}) is gone: {exc}") from exc

    def receive(self, timeout: float) -> list:
        status, payload = self._receive(timeout, "reply")
        if status != "ok":
            raise WorkerFailure(f"worker {self.index} answered {status}: {payload}")
        return payload

    def _receive(self, timeout: float, what: str):
        try:
            if not self.conn.poll(timeout):
                raise WorkerFailure(
                    f"worker {self.index} (pid {self.pid}) gave no {what} within {timeout:.0f} s (hung)"
                )
            return self.conn.recv()
        except (EOFError, ConnectionResetError, OSError) as exc:
            code = self.process.poll()
            raise WorkerFailure(
                f"worker {self.index} (pid {self.pid}) died (exit code {code}): {self.log_tail()}"
            ) from exc

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        text = [line for line in text if "robosuite WARNING" not in line]  # import-time noise
        return " | ".join(text[-lines:]) or "(no output)"

    def close(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._cleanup()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup(keep_log=True)

    def _cleanup(self, keep_log: bool = False) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if not keep_log:
            self.log_path.unlink(missing_ok=True)


_LIVE: weakref.WeakSet[LiberoVecEnv] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for env in list(_LIVE):
        env.close()


class LiberoVecEnv:
    """`VectorEnv` over LIBERO: reset(tasks, init_ids) -> LiberoObservation, step(actions [N, 7]).

    Another simulator reuses the pool (restarts, retries, deadlines) by overriding the hooks below the VectorEnv
    methods: `ACTION_DIM`, `_make_catalog`, `_default_max_steps`, `_new_worker`, `_blank_result`, `_observation`
    (the ALOHA extra: `opd_core.envs.aloha.pool`)."""

    ACTION_DIM = 7
    NAME = "libero"
    """How the pool's event lines on stderr name the simulator."""

    def __init__(
        self,
        num_envs: int,
        image_size: int = 128,
        max_episode_steps: int = 0,
        *,
        num_workers: int = 0,
        cameras: bool = True,
        wrist: bool | None = None,
        max_retries: int = 2,
        step_timeout: float | None = None,
        reset_timeout: float | None = None,
        start_timeout: float | None = None,
    ):
        if num_envs < 0:
            raise ValueError("num_envs must not be negative")
        self.num_envs = num_envs
        self.image_size = image_size
        self._configured_max_steps = max_episode_steps
        self.max_episode_steps = max_episode_steps or self._default_max_steps([])
        workers = num_workers or int(_env_default("OPD_LIBERO_WORKERS", 0)) or (os.cpu_count() or 1)
        self.num_workers = max(1, min(num_envs, workers))
        self.cameras = cameras
        self.wrist = cameras and (wrist if wrist is not None else os.environ.get("OPD_LIBERO_WRIST", "0") == "1")
        """Render the wrist camera too (the standard protocol's videos, wrist-camera policies). Off by default, since
        `Observation` has no wrist field yet and rendering it costs about 40% of the step rate; OPD_LIBERO_WRIST=1
        turns it on by default. When off, `LiberoObservation.wrist` is black."""
        self.max_retries = max_retries
        self.step_timeout = step_timeout or _env_default("OPD_LIBERO_STEP_TIMEOUT", 30.0)
        """Seconds a worker may take per episode of a request (a step, or a reset's no-op warm-up) before it
        counts as hung."""
        self.reset_timeout = reset_timeout or _env_default("OPD_LIBERO_RESET_TIMEOUT", 240.0)
        """Extra seconds allowed for a request that may build simulators (resets, fresh workers, retries)."""
        self.start_timeout = start_timeout or _env_default("OPD_LIBERO_START_TIMEOUT", 120.0)
        self.catalog = self._make_catalog()
        self._workers: list[_Worker | None] = [None] * self.num_workers
        self._consecutive_start_failures = 0
        self.events: list[dict] = []
        """Restarts, retries and failed episodes: dicts with time, kind, worker, slots, reason."""
        n = num_envs
        self.tasks: list[str] = [""] * n
        self.suites: list[str] = [""] * n
        self.init_ids = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        """Episodes that succeeded (frozen until the next reset)."""
        self.failed = np.zeros(n, dtype=bool)
        """Episodes marked failed after `max_retries` worker failures (frozen, success False)."""
        self.retries = np.zeros(n, dtype=np.int64)
        self._assignment = [i % self.num_workers for i in range(n)]
        self._last: list[dict | None] = [None] * n
        self._closed = False
        _LIVE.add(self)

    # ------------------------------------------------------------------ VectorEnv
    def reset(self, tasks: list[str], init_ids: list[int]) -> LiberoObservation:
        if len(tasks) != self.num_envs or len(init_ids) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} tasks and init ids, got {len(tasks)} and {len(init_ids)}")
        self._check_open()
        suites = [self.catalog.suite_of(task) for task in tasks]  # KeyError names an unknown task
        self.tasks, self.suites = list(tasks), suites
        self.init_ids = np.asarray(init_ids, dtype=np.int64)
        self.max_episode_steps = self._configured_max_steps or self._default_max_steps(suites)
        self.done[:] = False
        self.failed[:] = False
        self.retries[:] = 0
        self._last = [None] * self.num_envs
        self._assignment = self._deal(tasks)
        ops = {i: ("reset", suites[i], tasks[i], int(init_ids[i])) for i in range(self.num_envs)}
        self._execute(ops, "reset")
        return self._observation()

    def step(self, actions: np.ndarray) -> tuple[LiberoObservation, np.ndarray]:
        self._check_open()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.ACTION_DIM):
            raise ValueError(f"expected actions of shape ({self.num_envs}, {self.ACTION_DIM}), got {actions.shape}")
        active = np.nonzero(~self.done & ~self.failed)[0]
        self._execute(
            {int(i): ("step", self.suites[i], self.tasks[i], self._last[i]["slot_state"], actions[i]) for i in active},
            "step",
        )
        return self._observation(), self.done.copy()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            if worker is not None:
                worker.close()
        self._workers = [None] * self.num_workers
        _LIVE.discard(self)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------------ hooks of the simulator
    def _make_catalog(self):
        return catalog()

    def _default_max_steps(self, suites: list[str]) -> int:
        """The step limit of episodes of these suites (none yet: the object suite's)."""
        return max((MAX_EPISODE_STEPS[s] for s in suites), default=MAX_EPISODE_STEPS["libero_object"])

    def _new_worker(self, index: int) -> _Worker:
        return _Worker(index, self.image_size, 2 if self.wrist else int(self.cameras), self.start_timeout)

    def _blank_result(self) -> dict:
        """The last observation of an episode that failed before its first one (a black frame stands in)."""
        size = self.image_size
        blank = np.zeros((size, size, 3), np.uint8)
        return {
            "image": blank,
            "wrist": blank,
            "proprio": np.zeros(5, np.float32),
            "state": np.zeros(PRIV.SIZE, np.float32),
            "success": False,
            "slot_state": None,
        }

    # ------------------------------------------------------------------ extras
    @property
    def worker_pids(self) -> list[int | None]:
        return [w.pid if w is not None else None for w in self._workers]

    def worker_of(self, slot: int) -> int:
        return self._assignment[slot]

    def _deal(self, tasks: list[str]) -> list[int]:
        """Episodes to workers: sorted by task, cut into P contiguous, near-equal groups."""
        order = sorted(range(len(tasks)), key=lambda i: (tasks[i], i))
        assignment = [0] * len(tasks)
        for rank, slot in enumerate(order):
            assignment[slot] = rank * self.num_workers // max(len(tasks), 1)
        return assignment

    # ------------------------------------------------------------------ machinery
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this LiberoVecEnv is closed")

    def _worker(self, index: int) -> _Worker:
        worker = self._workers[index]
        if worker is None:
            worker = self._new_worker(index)
            self._workers[index] = worker
        return worker

    def _restart(self, index: int, reason: str, slots: list[int]) -> None:
        old = self._workers[index]
        if old is not None:
            old.kill()
        self._workers[index] = None
        self._event("restart", index, slots, reason)

    def _event(self, kind: str, worker: int, slots: list[int], reason: str) -> None:
        self.events.append(
            {
                "time": time.time(),
                "kind": kind,
                "worker": worker,
                "slots": list(slots),
                "tasks": [self.tasks[s] for s in slots],
                "reason": reason[-500:],
            }
        )
        print(f"[{self.NAME}] {kind} worker {worker} slots {list(slots)}: {reason[-300:]}", file=sys.stderr)

    def _execute(self, ops: dict[int, tuple], what: str) -> None:
        """Run one op per slot across the workers; retry or mark the slots of failed workers."""
        pending = dict(ops)
        while pending:
            groups: dict[int, list[int]] = {}
            for slot in sorted(pending):
                groups.setdefault(self.worker_of(slot), []).append(slot)
            sent: dict[int, list[int]] = {}
            for index, slots in groups.items():
                try:
                    worker = self._worker(index)
                    worker.send([pending[slot] for slot in slots])
                    sent[index] = slots
                except WorkerFailure as exc:
                    self._fail_slots(index, slots, str(exc), pending)
            for index, slots in sent.items():
                worker = self._workers[index]
                # a reset, a fresh worker or a retried episode may have to build a simulator first
                slow = not worker.ready or any(pending[s][0] != "step" or self.retries[s] for s in slots)
                timeout = self.step_timeout * len(slots) + (self.reset_timeout if slow else 0.0)
                try:
                    worker.wait_ready()
                    results = worker.receive(timeout)
                    self._consecutive_start_failures = 0
                except WorkerFailure as exc:
                    self._fail_slots(index, slots, str(exc), pending)
                    continue
                for slot, result in zip(slots, results):
                    if isinstance(result, tuple) and result and result[0] == "error":
                        self._retry_slot(slot, index, f"episode error in worker: {result[1]}", pending)
                    else:
                        self._accept(slot, result)
                        del pending[slot]

    def _fail_slots(self, index: int, slots: list[int], reason: str, pending: dict[int, tuple]) -> None:
        worker = self._workers[index]
        never_started = worker is not None and not worker.ready
        self._restart(index, reason, slots)
        if never_started:
            self._consecutive_start_failures += 1
            if self._consecutive_start_failures >= 3:
                self.close()
                raise EnvironmentUnavailable(f"LIBERO worker processes keep failing to start: {reason}")
        for slot in slots:
            self._retry_slot(slot, index, reason, pending)

    def _retry_slot(self, slot: int, index: int, reason: str, pending: dict[int, tuple]) -> None:
        self.retries[slot] += 1
        if self.retries[slot] > self.max_retries:
            self._mark_failed(slot, index, reason)
            del pending[slot]
            return
        self._event("retry", index, [slot], reason)  # the same op again: a step carries its slot state

    def _mark_failed(self, slot: int, index: int, reason: str) -> None:
        self.failed[slot] = True
        if self._last[slot] is None:  # failed before its first observation
            self._last[slot] = self._blank_result()
        self._event("episode_failed", index, [slot], reason)

    def _accept(self, slot: int, result: dict) -> None:
        self._last[slot] = result
        if result["success"]:
            self.done[slot] = True

    def _observation(self) -> LiberoObservation:
        last = self._last
        if not last:  # an empty pool (e.g. an evaluation with no initial states)
            size = self.image_size
            empty = np.zeros((0, size, size, 3), np.uint8)
            return LiberoObservation(
                empty, np.zeros((0, 5), np.float32), [], state=np.zeros((0, PRIV.SIZE), np.float32), wrist=empty
            )
        return LiberoObservation(
            np.stack([r["image"] for r in last]),
            np.stack([r["proprio"] for r in last]).astype(np.float32),
            [self.catalog.instruction(t) for t in self.tasks],
            state=np.stack([r["state"] for r in last]).astype(np.float32),
            wrist=np.stack([r["wrist"] for r in last]),
        )
