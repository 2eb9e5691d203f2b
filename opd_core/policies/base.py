"""The policy interface and the registry that builds or restores a policy by its kind name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from opd_core.envs.base import Observation
from opd_core.tokenizer import ActionTokenizer


class Policy(torch.nn.Module):
    """A tokenized-action policy. Subclasses set `kind` and implement `forward`, `arch_config`.

    `forward(obs)` takes raw batched observations (numpy, as the simulators return them) so that a teacher and a
    student with different preprocessing can label the same stored states.
    """

    kind: str = ""
    tokenizer: ActionTokenizer

    def forward(self, obs: Observation) -> torch.Tensor:  # [B, D, K] logits
        raise NotImplementedError

    def arch_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (saved in checkpoints)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def save_weights(self, directory: Path) -> None:
        """Write the weights into a checkpoint folder (safetensors by default)."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))

    def load_weights(self, directory: Path) -> None:
        from safetensors.torch import load_file

        self.load_state_dict(load_file(str(directory / "model.safetensors"), device=str(self.device)))


PolicyFactory = Callable[[dict[str, Any], ActionTokenizer], Policy]
_REGISTRY: dict[str, PolicyFactory] = {}


def register_policy(kind: str, factory: PolicyFactory) -> None:
    _REGISTRY[kind] = factory


def build_policy(kind: str, arch: dict[str, Any], tokenizer: ActionTokenizer) -> Policy:
    _ensure_builtin()
    if kind not in _REGISTRY:
        raise ValueError(f"unknown policy kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind](arch, tokenizer)


def _ensure_builtin() -> None:
    if "small_vla" not in _REGISTRY:
        from opd_core.policies import small_vla  # noqa: F401  (registers itself)
