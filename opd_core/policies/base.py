"""The policy interface and the registry that builds or restores a policy by its kind name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from opd_core.envs.base import Observation
from opd_core.tokenizer import ActionTokenizer


class Policy(torch.nn.Module):
    """A tokenized-action policy. Subclasses set `kind` and implement `forward` and `arch_config`.

    `forward(obs, actions)` takes raw batched observations (numpy, as the simulators return them) so that a
    teacher and a student with different preprocessing can label the same stored states. It returns logits
    [B, chunk_size * 7, 256]: one categorical per action dimension of each of the `chunk_size` steps emitted per
    query. Autoregressive policies condition dimension d on the bins in `actions[:, :d]` (teacher forcing);
    policies with a factorised head ignore `actions`. `sample` draws the bins themselves.
    """

    kind: str = ""
    tokenizer: ActionTokenizer
    chunk_size: int = 1
    """Environment steps per policy query (OpenVLA-OFT style action chunks)."""

    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, obs: Observation, temperature: float,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bins [B, chunk*7], their log-probs at `temperature`, logits at temperature 1 [B, chunk*7, 256])."""
        logits = self(obs).float()
        bins, logp = sample_bins(logits, temperature, generator)
        return bins, logp, logits

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


def sample_bins(logits: torch.Tensor, temperature: float,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One bin per dimension at `temperature` (0 = argmax); returns (bins [B, D], their log-probs)."""
    if temperature == 0:
        bins = logits.argmax(-1)
        logp = torch.log_softmax(logits, -1).gather(-1, bins[..., None])[..., 0]
        return bins, logp
    scaled = torch.log_softmax(logits / temperature, -1)
    flat = scaled.reshape(-1, scaled.shape[-1]).exp()
    bins = torch.multinomial(flat, 1, generator=generator).view(scaled.shape[:-1])
    return bins, scaled.gather(-1, bins[..., None])[..., 0]


PolicyFactory = Callable[[dict[str, Any], ActionTokenizer], Policy]
_REGISTRY: dict[str, PolicyFactory] = {}


def register_policy(kind: str, factory: PolicyFactory) -> None:
    _REGISTRY[kind] = factory


def build_policy(kind: str, arch: dict[str, Any], tokenizer: ActionTokenizer) -> Policy:
    _ensure_builtin()
    if kind == "libero_expert":  # registers itself on import; LIBERO is an optional extra
        import opd_core.envs.libero.policy  # noqa: F401
    if kind not in _REGISTRY:
        raise ValueError(f"unknown policy kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind](arch, tokenizer)


def _ensure_builtin() -> None:
    if "small_vla" not in _REGISTRY:
        from opd_core.policies import small_vla  # noqa: F401  (registers itself)
