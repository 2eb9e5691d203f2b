"""A run's place in a process group, as the training loop sees it: `World` (its rank, the group's size and the few
collectives the loop needs: sums, gathers, a stop flag) and the pure helpers that split a run's work over ranks.

`SINGLE` is the one-process world whose collectives are identities, so that `train` runs unchanged, and as fast,
with one process. The launchers that start several ranks live in `opd_core.distributed`.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from opd_core.config import RunConfig

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for a rank that is alive but slow (a dead rank fails its peers at once)."""


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
