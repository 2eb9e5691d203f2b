"""How the ranks of a run share the student, on PyTorch's own engines: `Replica` (one process: the module itself),
`DDPStudent` (torch.nn.parallel.DistributedDataParallel: a full replica per rank, bucketed gradient all-reduce
overlapped with the backward) and `FSDPStudent` (FSDP2, torch.distributed.fsdp.fully_shard: parameters, gradients
and AdamW state sharded over ranks).

The training loop sees one interface:
- `train_module`: what the update's forward passes go through (the wrapper, whose hooks sync the gradients);
- `gradient_sync(enabled)`: a context for one micro-batch's forward and backward; off, the gradients accumulate
  locally (DDP's no_sync, FSDP2's set_requires_gradient_sync(False)) until the next synced backward;
- `full_parameters()`: a context in which the plain student holds its full parameters, for the rollouts, the
  evaluation and the checkpoint (FSDP2: every rank all-gathers once on entry, then acts without collectives, so
  ranks may make different numbers of forward passes; it reshards on exit);
- `optimizer_state` / `load_optimizer_state` / `load_weights`: a checkpoint's content in the one-process layout
  (parameter index -> tensors, full tensors), whichever engine wrote it.

Both engines average gradients over ranks: the loop scales each rank's loss by the world size (see
`opd_core.train._accumulated_backward`).
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import torch

from opd_core.world import World


class Replica:
    """One process, or the base of the engines: the student is trained as it is."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.train_module: torch.nn.Module = module

    def gradient_sync(self, enabled: bool) -> contextlib.AbstractContextManager:  # noqa: ARG002 - no peers to sync with
        return contextlib.nullcontext()

    def full_parameters(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)

    def load_weights(self, directory: Path) -> None:
        """A checkpoint's weights into the student (every rank calls it)."""
        self.module.load_weights(directory)

    def checkpoint_module(self) -> torch.nn.Module | None:
        """The student with its full weights, for rank 0 to save (every rank calls it; None on the others)."""
        return self.module


class DDPStudent(Replica):
    """DistributedDataParallel over the world's process group (gloo on CPU, NCCL on CUDA). The wrapper broadcasts
    rank 0's parameters and buffers when it is built, so every replica starts equal. `find_unused_parameters`: a
    weight that no rank's forward reached (a transformers model's unused head) keeps grad None, as AdamW wants."""

    def __init__(self, module: torch.nn.Module, world: World):
        super().__init__(module)
        from torch.nn.parallel import DistributedDataParallel

        cuda = next(module.parameters()).device.type == "cuda"
        self.train_module = DistributedDataParallel(
            module,
            device_ids=[world.local_rank] if cuda else None,
            forward_sync_buffers=False,  # synced once when built: the students' buffers are constants
            find_unused_parameters=True,
        )

    def gradient_sync(self, enabled: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if enabled else self.train_module.no_sync()


class FSDPStudent(Replica):
    """FSDP2: `fully_shard` on every transformer block (the classes a transformers model names in
    `_no_split_modules`), then on the whole student. A LoRA student's frozen base is sharded with its adapters;
    only the adapters get gradients and AdamW state. Rollouts, evaluation and checkpoints use the gathered full
    parameters (`full_parameters`): a student whose training state (weights, gradients, two AdamW moments) does
    not fit one device usually fits there for inference, as in veRL's and RLinf's FSDP rollouts.

    Each forward of a sharded block in the update is an all-gather, so every rank must run its blocks equally
    often: a policy that splits a batch into a data-dependent number of model calls (TransformersVLA on a model
    without position_ids, which batches equal-length prompts apart) can make ranks disagree and wait on each
    other until the process group's timeout; such students train with ddp."""

    def __init__(self, module: torch.nn.Module, world: World):
        super().__init__(module)
        from torch.distributed.fsdp import fully_shard

        world.broadcast_module_(module)  # fully_shard keeps each rank's own slice: start from rank 0's weights
        # rank 0's plain copy (host memory) through which checkpoints are written and read: a sharded module's
        # state_dict holds DTensors, which the policies' save formats (safetensors, peft) do not take
        self._plain = copy.deepcopy(module).cpu() if world.is_main else None
        for block in shard_units(module):
            fully_shard(block)
        fully_shard(module)
        # FSDP2 makes the first module to run forward the root; the policies' sampling calls their inner model
        # directly, so the student is made the root now (no collective: it only records the module tree)
        module._get_fsdp_state()._lazy_init()
        self.train_module = module

    def _fsdp_modules(self) -> list[torch.nn.Module]:
        from torch.distributed.fsdp import FSDPModule

        return [m for m in self.module.modules() if isinstance(m, FSDPModule)]

    def gradient_sync(self, enabled: bool) -> contextlib.AbstractContextManager:
        self.module.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def full_parameters(self):
        modules = self._fsdp_modules()
        self.module.set_reshard_after_forward(False)
        for module in modules:  # the same order on every rank: each unshard is one all-gather
            module.unshard()
        try:
            yield
        finally:
            for module in modules:
                module.reshard()
            self.module.set_reshard_after_forward(True)  # the blocks, as fully_shard left them; the root keeps
            self.module.set_reshard_after_forward(False, recurse=False)  # its parameters for the backward

    def _parameter_names(self, optimizer: torch.optim.Optimizer) -> list[str]:
        names = {id(p): name for name, p in self.module.named_parameters()}
        return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The full AdamW state (gathered on every rank), keyed by parameter index as one process keys it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if not optimizer.state:  # before the first step (the same on every rank): get_optimizer_state_dict would
            return optimizer.state_dict()  # initialise AdamW by a zero step, one step ahead of a 1-process run
        full = get_optimizer_state_dict(self.module, optimizer, options=StateDictOptions(full_state_dict=True))
        index = {name: k for k, name in enumerate(self._parameter_names(optimizer))}
        return {
            "state": {index[name]: value for name, value in full["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]],
        }

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not state["state"]:
            optimizer.load_state_dict(state)
            return
        names = self._parameter_names(optimizer)
        full = {
            "state": {names[int(k)]: value for k, value in state["state"].items()},
            "param_groups": [{**g, "params": [names[int(k)] for k in g["params"]]} for g in state["param_groups"]],
        }
        set_optimizer_state_dict(self.module, optimizer, full, options=StateDictOptions(full_state_dict=True))

    def load_weights(self, directory: Path) -> None:
        """Rank 0 reads the checkpoint into its plain copy; every rank receives its shards of it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        weights = {}
        if self._plain is not None:
            self._plain.load_weights(directory)
            weights = self._plain.state_dict()
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(self.module, weights, options=options)

    def checkpoint_module(self) -> torch.nn.Module | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self._plain is None:
            return None
        self._plain.load_state_dict(weights)
        return self._plain


def shard_units(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a transformers model (its `_no_split_modules` classes), outermost first; none for
    a student without them (it is sharded as one unit)."""
    names = set()
    for sub in module.modules():
        names.update(getattr(sub, "_no_split_modules", None) or ())
    units, inside = [], set()
    for sub in module.modules():
        if type(sub).__name__ in names and id(sub) not in inside:
            units.append(sub)
            inside.update(id(m) for m in sub.modules())
    return units


def data_parallel(module: torch.nn.Module, world: World, engine: str) -> Replica:
    """The student as `world`'s ranks train it: `engine` is the config's data_parallel (ddp | fsdp); one rank
    trains the module itself."""
    if not world.distributed:
        return Replica(module)
    if engine == "fsdp":
        return FSDPStudent(module, world)
    return DDPStudent(module, world)
