"""Checkpoints: a folder with safetensors weights, safetensors optimizer tensors, and JSON metadata.

`meta.json` holds the policy kind and architecture, the action tokenizer statistics, the training step, the run
config, the optimizer's non-tensor state and the RNG states, so that a resumed run continues exactly where it
stopped, and the size of every other file of the folder. Nothing is pickled: loading a checkpoint never executes
code from it.

Writes are atomic and durable: a temporary folder, every file and the folder fsynced, then renamed into place (and
the parent fsynced). `verify_checkpoint` checks what a resume relies on (meta.json parses, every listed file is there
at its written size, every safetensors header reads), so that a resume can skip a damaged checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from opd_core.errors import CheckpointError
from opd_core.policies.base import Policy
from opd_core.registry import checkpoint_loader, policy_class
from opd_core.tokenizer import ActionTokenizer

FORMAT = "opd-checkpoint-v1"
META = "meta.json"


@dataclass
class TrainingState:
    step: int
    optimizer: dict[str, Any] | None
    rng: dict[str, Any]
    run_config: dict[str, Any]
    extra: dict[str, Any]


def save_checkpoint(
    directory: str | Path,
    policy: Policy,
    *,
    step: int,
    run_config: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None = None,
    rng: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """`optimizer`: the optimizer or its state dict (a sharded run's, gathered in the one-process layout).

    Write atomically and durably (a temporary folder, fsynced, renamed into place) so that neither a killed
    process nor a power cut leaves half a checkpoint under the final name; a failed write leaves nothing."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_checkpoint(tmp, policy, step, run_config, optimizer, rng, extra)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    _fsync_dir(directory.parent)
    return directory


def _write_checkpoint(
    tmp: Path,
    policy: Policy,
    step: int,
    run_config: dict[str, Any] | None,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None,
    rng: dict[str, Any] | None,
    extra: dict[str, Any] | None,
) -> None:
    policy.save_weights(tmp)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "policy": {"kind": policy.kind, "arch": policy.arch_config()},
        "tokenizer": policy.tokenizer.to_dict(),
        "action_dim": policy.tokenizer.dim,
        "step": step,
        "run_config": run_config or {},
        "extra": extra or {},
    }
    if optimizer is not None:
        state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
        meta["optimizer"] = _split_optimizer_state(state, tensors)
    rng = dict(rng or {})
    if "torch" in rng:
        tensors["rng.torch"] = rng.pop("torch")
    meta["rng"] = rng
    if tensors:
        save_file(tensors, str(tmp / "training_state.safetensors"))
    meta["files"] = {
        str(path.relative_to(tmp)): path.stat().st_size for path in sorted(tmp.rglob("*")) if path.is_file()
    }
    (tmp / META).write_text(json.dumps(meta, indent=1))


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(root)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _split_optimizer_state(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, values in meta.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def read_meta(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / META
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not path.is_file():
        raise CheckpointError(f"{directory} is not an OPD checkpoint (no {META})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{directory}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def load_policy(
    directory: str | Path, device: str | torch.device = "cpu", hf_settings: dict[str, Any] | None = None
) -> Policy:
    """Restore a policy on `device` with the first registered checkpoint loader that accepts `directory` (an OPD
    checkpoint folder, a transformers model directory, ...).

    `hf_settings` (HFVLASettings fields) apply to a raw transformers directory such as an OpenVLA checkpoint.
    """
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    loader = checkpoint_loader(directory)
    if loader is None:
        read_meta(directory)  # raises, naming what the folder lacks
    return loader.load(directory, str(device), hf_settings)


class OpdCheckpointLoader:
    """Checkpoint loader `opd`: a folder written by `save_checkpoint` (its `meta.json` names the policy kind)."""

    @staticmethod
    def accepts(directory: Path) -> bool:
        return (directory / META).is_file()

    @staticmethod
    def load(directory: Path, device: str, hf_settings: dict[str, Any] | None = None) -> Policy:
        meta = read_meta(directory)
        tokenizer = ActionTokenizer.from_dict(meta["tokenizer"])
        if meta.get("action_dim", tokenizer.dim) != tokenizer.dim:  # checkpoints before 14-D actions omit it: 7-D
            raise CheckpointError(
                f"{directory}: meta.json records {meta['action_dim']}-D actions but its tokenizer "
                f"statistics have {tokenizer.dim} dimensions"
            )
        kind, arch = meta["policy"]["kind"], meta["policy"]["arch"]
        try:
            return policy_class(kind).from_checkpoint(directory, arch, tokenizer, device)
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"cannot load weights from {directory}: {exc}") from exc


def load_training_state(directory: str | Path, optimizer: torch.optim.Optimizer | None = None) -> TrainingState:
    """Step, RNG states and run config of a checkpoint; restores `optimizer` in place when given."""
    directory = Path(directory)
    meta = read_meta(directory)
    path = directory / "training_state.safetensors"
    tensors = load_file(str(path)) if path.exists() else {}
    if optimizer is not None:
        optimizer.load_state_dict(_optimizer_state(directory, meta, tensors))
    rng = dict(meta.get("rng", {}))
    if "rng.torch" in tensors:
        rng["torch"] = tensors["rng.torch"]
    return TrainingState(meta["step"], meta.get("optimizer"), rng, meta.get("run_config", {}), meta.get("extra", {}))


def optimizer_state(directory: str | Path) -> dict[str, Any]:
    """The optimizer state dict a checkpoint holds (parameter index -> tensors, as `optimizer.state_dict()`)."""
    directory = Path(directory)
    path = directory / "training_state.safetensors"
    return _optimizer_state(directory, read_meta(directory), load_file(str(path)) if path.exists() else {})


def _optimizer_state(directory: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    if "optimizer" not in meta:
        raise CheckpointError(f"{directory} holds no optimizer state to resume from")
    return _join_optimizer_state(meta["optimizer"], tensors)


def rng_state(numpy_rng: np.random.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": numpy_rng.bit_generator.state}


def restore_rng(state: dict[str, Any], numpy_rng: np.random.Generator) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        numpy_rng.bit_generator.state = state["numpy"]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete `checkpoints/step_<n>` folder of a run, or None."""
    found = run_checkpoints(run_dir)
    return found[0] if found else None


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete `checkpoints/step_<n>` folders (those with a meta.json), newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = [
        (int(p.name.split("_")[1]), p)
        for p in root.glob("step_*")
        if p.name.split("_")[1].isdigit() and (p / META).is_file()
    ]
    return [path for _, path in sorted(steps, reverse=True)]


def verify_checkpoint(directory: str | Path) -> None:
    """Raise CheckpointError naming the file when `directory` cannot be loaded: meta.json unreadable, a file it
    lists missing or of another size than written (truncated), or a safetensors file whose header does not read."""
    directory = Path(directory)
    meta = read_meta(directory)
    for name, size in meta.get("files", {}).items():  # older checkpoints list none
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (meta.json lists it)")
        if path.stat().st_size != size:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, but {size} were written (truncated?)")
    for path in sorted(directory.rglob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
