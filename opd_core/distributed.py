"""One run across several processes: data-parallel training on torch.distributed (gloo on CPU, NCCL on CUDA).

`World` is what the training loop sees of the process group: its rank, the group's size and the few collectives it
needs (sums, gathers, a stop flag). `SINGLE` is the one-process world whose collectives are identities, so that
`train` runs unchanged, and as fast, with one process.

Two launchers, both PyTorch's own machinery:
- `launch` (one machine, what `train` and the workers call when `nproc_per_node > 1`): the ranks are spawned with
  `torch.multiprocessing.start_processes` and meet through the env:// rendezvous (MASTER_ADDR/MASTER_PORT). The
  calling process stays out of the group: it relays rank 0's metrics into the caller's sink, passes
  `stop_requested` to rank 0 (which broadcasts it), and watches the ranks; one rank that dies ends every rank and
  raises `RankCrashedError`.
- `torchrun` (several machines, c10d rendezvous): every node runs
  `python -m torch.distributed.run --nnodes N --nproc-per-node P --rdzv-backend c10d --rdzv-endpoint HOST:PORT
  -m opd_core.distributed run.yaml`; global rank 0 writes the run folder's JSON-lines metrics (`LocalDirSink`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from opd_core.errors import OpdError, RankCrashedError

if TYPE_CHECKING:
    from opd_core.config import RunConfig
    from opd_core.sinks import MetricsSink
    from opd_core.train import TrainResult

__all__ = ["SINGLE", "RankCrashedError", "RankFailedError", "World", "init_world", "launch", "main"]

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for a rank that is alive but slow (a dead rank fails its peers at once)."""


class RankFailedError(OpdError):
    """A rank raised an error that could not cross the process boundary as itself; the message carries it."""


# ============================================================================================ the world
@dataclass(frozen=True)
class World:
    """This process's place in the run: `rank` of `size` (global), `local_rank` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the sink, checkpoints and videos."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, count: int) -> slice:
        """This rank's contiguous share of `count` items (`count` is a multiple of the world size)."""
        per_rank = count // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop request seen by rank 0 stops all at the same step)."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int64)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank (picklable objects)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def sum_tensor_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks of a tensor (the flattened gradients)."""
        if self.distributed:
            torch.distributed.all_reduce(tensor)
        return tensor

    def broadcast_module_(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (a replica that started differently is overwritten)."""
        if self.distributed:
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    def weighted_mean(self, metrics: dict[str, float], weight: float) -> dict[str, float]:
        """Means over every rank's items: each rank's `metrics` are means over its `weight` items."""
        if not self.distributed:
            return metrics
        keys = sorted(metrics)
        totals = self.sum([weight, *(metrics[k] * weight for k in keys)])
        return {k: (v / totals[0] if totals[0] else float("nan")) for k, v in zip(keys, totals[1:], strict=True)}


SINGLE = World()
"""The one-process world (every collective is an identity)."""


def init_world(config: RunConfig) -> World:
    """Join the process group described by the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT); returns `SINGLE` when WORLD_SIZE is 1 or unset."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return SINGLE
    if size != config.world_size:
        from opd_core.config import ConfigError

        raise ConfigError(
            "nproc_per_node",
            f"the launcher started {size} ranks, the config asks for nnodes x nproc_per_node = {config.world_size}",
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = config.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(
        "nccl" if cuda else "gloo", rank=rank, world_size=size, timeout=PROCESS_GROUP_TIMEOUT
    )
    return World(rank, size, local_rank)


def rank_config(config: RunConfig, world: World) -> RunConfig:
    """The config as one rank runs it: a bare `cuda` device becomes this rank's GPU."""
    changes = {
        name: f"cuda:{world.local_rank}" for name in ("device", "teacher_device") if getattr(config, name) == "cuda"
    }
    return config.replace(**changes) if changes else config


def close_world(world: World) -> None:
    if world.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def trajectory_generators(seed: int, step: int, first: int, count: int) -> list[torch.Generator]:
    """One sampling generator per trajectory, derived from (seed, step, global trajectory index): the global batch
    is the same whatever the number of ranks that share it."""
    states = np.random.SeedSequence([seed, step]).spawn(first + count)[first:]
    return [torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> np.uint64(1))) for s in states]


def shard_tasks(tasks: list[str], filmed: list[str], size: int) -> list[list[str]]:
    """Evaluation tasks per rank: the filmed ones on rank 0 (it alone writes videos), the others each to the rank
    that has the fewest so far."""
    shards: list[list[str]] = [[] for _ in range(size)]
    shards[0] = [task for task in tasks if task in filmed]
    for task in tasks:
        if task not in filmed:
            min(shards, key=len).append(task)
    return [[task for task in tasks if task in shard] for shard in shards]  # each in the run's task order


def merge_eval_details(parts: list[dict]) -> dict:
    """The ranks' `EvalResult.details` as one: counts summed, lists joined, per-task mappings merged."""
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged[key] = merged.get(key, []) + value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
            else:
                merged.setdefault(key, value)
    return merged


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
    except BaseException as exc:
        messages.put(("error", local_rank, _portable(exc, local_rank)))
        raise
    finally:
        close_world(world)


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
    sys.exit(main())
