"""One run across several processes: data-parallel training on torch.distributed (gloo on CPU, NCCL on CUDA).

What the training loop sees of the process group (`World`, `SINGLE`) lives in `opd_core.world`; this module starts
the ranks.

Two launchers, both PyTorch's own machinery:
- `launch` (one machine, registered as the `local` launcher that `train` looks up when `nproc_per_node > 1`): the
  ranks are spawned with `torch.multiprocessing.start_processes` and meet through the env:// rendezvous
  (MASTER_ADDR/MASTER_PORT). The calling process stays out of the group: it relays rank 0's metrics into the
  caller's sink, passes `stop_requested` to rank 0 (which broadcasts it), and watches the ranks; one rank that dies
  ends every rank and raises `RankCrashedError`.
- `torchrun` (several machines, c10d rendezvous): every node runs
  `python -m torch.distributed.run --nnodes N --nproc-per-node P --rdzv-backend c10d --rdzv-endpoint HOST:PORT
  -m opd_core.distributed run.yaml`; global rank 0 writes the run folder's JSON-lines metrics (`LocalDirSink`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue as queue_module
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import torch

from opd_core.errors import OpdError, RankCrashedError
from opd_core.world import SINGLE, World, close_world, init_world, rank_config

if TYPE_CHECKING:
    from opd_core.config import RunConfig
    from opd_core.sinks import MetricsSink
    from opd_core.train import TrainResult

__all__ = ["SINGLE", "RankCrashedError", "RankFailedError", "World", "init_world", "launch", "main"]


class RankFailedError(OpdError):
    """A rank raised an error that could not cross the process boundary as itself; the message carries it."""


# ============================================================================================ local launcher
class QueueSink:
    """Rank 0's sink inside a spawned rank: every call goes to the launching process, which replays it."""

    def __init__(self, queue):
        self._queue = queue

    def _put(self, method: str, *args: Any) -> None:
        self._queue.put(("sink", method, args))

    def log(self, metrics, step):
        self._put("log", metrics, step)

    def log_checkpoint(self, step, path, summary):
        self._put("log_checkpoint", step, path, summary)

    def log_video(self, step, task, success, path):
        self._put("log_video", step, task, success, path)

    def progress(self, step, total):
        self._put("progress", step, total)

    def resume_from(self, step):
        self._put("resume_from", step)

    def close(self):
        pass


def launch(
    config: RunConfig,
    sink: MetricsSink,
    *,
    stop_requested: Callable[[], bool] = lambda: False,
    resume: bool = False,
    poll_seconds: float = 0.05,
) -> TrainResult:
    """Run `config` with `config.nproc_per_node` ranks on this machine (see the module docstring)."""
    if config.nnodes != 1:
        from opd_core.config import ConfigError

        raise ConfigError(
            "nnodes",
            f"a run over {config.nnodes} machines is started with torchrun on each machine "
            "(python -m torch.distributed.run ... -m opd_core.distributed run.yaml), not by one process",
        )
    context = torch.multiprocessing.get_context("spawn")
    messages, stop = context.Queue(), context.Event()
    with _children_allowed():
        ranks = torch.multiprocessing.start_processes(
            _rank_main,
            args=(
                config.to_dict(),
                config.nproc_per_node,
                _free_port(),
                resume,
                messages,
                stop,
                max(1, torch.get_num_threads() // config.nproc_per_node),
            ),
            nprocs=config.nproc_per_node,
            join=False,
            start_method="spawn",
        )
    processes = ranks.processes
    result, errors, culprit = None, [], None
    try:
        while culprit is None:
            result = _relay(messages, sink, errors, poll_seconds) or result
            if not stop.is_set() and stop_requested():
                stop.set()
            codes = [p.exitcode for p in processes]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:  # a rank killed by a signal is the cause; its peers' connection errors are the consequence
                culprit = min(failed, key=lambda rc: (rc[1] >= 0, rc[0]))
            elif all(code == 0 for code in codes):
                break
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join()
        while True:  # what the ranks sent before they ended
            late = _relay(messages, sink, errors, 0.0, block=False)
            if late is None and messages.empty():
                break
            result = late or result
    if culprit is not None:
        rank, code = culprit
        if code < 0 or not errors:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            raise RankCrashedError(
                f"rank {rank} of {config.nproc_per_node} {how}; every rank was stopped "
                "(the run resumes from its newest checkpoint)"
            )
        # the first error to arrive is the cause (the other ranks fail when its rank leaves the group);
        # the researcher's kind of error (a config, checkpoint or divergence error) wins over a lost connection
        expected = [exc for _, exc in errors if isinstance(exc, (OpdError, ValueError))]
        raise (expected or [exc for _, exc in errors])[0]
    if result is None:
        raise RankCrashedError("the ranks ended without a result from rank 0")
    return result


def _relay(messages, sink: MetricsSink, errors: list, timeout: float, block: bool = True):
    """Replay queued sink calls; collect rank errors; return rank 0's TrainResult when it arrives."""
    result = None
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait = max(0.0, deadline - time.monotonic())
            message = messages.get(timeout=wait) if block and wait > 0 else messages.get_nowait()
        except queue_module.Empty:
            return result
        if message[0] == "sink":
            getattr(sink, message[1])(*message[2])
        elif message[0] == "result":
            result = message[1]
        elif message[0] == "error":
            errors.append((message[1], message[2]))


@contextlib.contextmanager
def _children_allowed():
    """Let a daemonic process (a Celery prefork pool process) start the ranks. multiprocessing refuses so that
    daemonic children cannot outlive it; the ranks cannot: they die with their parent (PR_SET_PDEATHSIG) and
    `launch` kills them on every way out."""
    process = multiprocessing.current_process()
    saved = dict(process._config)
    process._config["daemon"] = False
    # billiard (Celery's multiprocessing fork) leaves its own AuthenticationString here, which only billiard may
    # pickle: the spawned ranks get the same key as the standard library's type
    process._config["authkey"] = multiprocessing.process.AuthenticationString(bytes(process.authkey))
    try:
        yield
    finally:
        process._config.clear()
        process._config.update(saved)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the kernel kills this rank when the launching process dies (a SIGKILLed worker leaves no rank)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _rank_main(
    local_rank: int, config_dict: dict, size: int, port: int, resume: bool, messages, stop, threads: int
) -> None:
    _die_with_parent()
    torch.set_num_threads(threads)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(size),
        LOCAL_WORLD_SIZE=str(size),
    )
    code = _run_rank(local_rank, config_dict, resume, messages, stop)
    messages.close()
    messages.join_thread()  # what the rank sent is in the pipe before the process ends
    exit_without_finalizers(code)


def _run_rank(local_rank: int, config_dict: dict, resume: bool, messages, stop) -> int:
    """Train this rank's share; its exit status (the launcher reads errors from `messages`)."""
    from opd_core.config import RunConfig
    from opd_core.sinks import NullSink
    from opd_core.train import train

    world = SINGLE
    try:
        config = RunConfig.from_dict(config_dict)
        world = init_world(config)
        sink = QueueSink(messages) if world.is_main else NullSink()
        result = train(rank_config(config, world), sink, stop_requested=stop.is_set, resume=resume, world=world)
        if world.is_main:
            messages.put(("result", result))
        return 0
    except BaseException as exc:
        messages.put(("error", local_rank, _portable(exc, local_rank)))
        traceback.print_exc()
        return 1
    finally:
        close_world(world)


def exit_without_finalizers(code: int) -> NoReturn:
    """End a rank's process without the interpreter's finalization, once its run is over and its process group
    destroyed: at that finalization a torch.distributed (gloo) C++ thread left joinable can abort the process
    ("terminate called without an active exception", SIGABRT, no Python frame left), which would read as a
    crashed rank after a run that ended well (seen in 3 of 6 two-rank CPU test runs under load)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _portable(exc: BaseException, rank: int) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable error travels as its message and traceback
        return RankFailedError(f"rank {rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


# ============================================================================================ torchrun entry
def main(argv: list[str] | None = None) -> int:
    """The per-rank program torchrun starts: `-m opd_core.distributed run.yaml [--resume]`."""
    parser = argparse.ArgumentParser(prog="python -m opd_core.distributed", description=main.__doc__)
    parser.add_argument("config", help="run config YAML (nnodes and nproc_per_node as torchrun was given)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    args = parser.parse_args(argv)
    from opd_core.config import RunConfig
    from opd_core.sinks import LocalDirSink, NullSink
    from opd_core.train import train

    config = RunConfig.load(args.config).validate()
    world = init_world(config)
    sink = LocalDirSink(config.out_dir) if world.is_main else NullSink()
    try:
        result = train(rank_config(config, world), sink, resume=args.resume, world=world)
    finally:
        sink.close()
        close_world(world)
    if world.is_main:
        print(f"{result.status} at step {result.step}: {result.out_dir}")
    return 0


if __name__ == "__main__":
    exit_without_finalizers(main())
