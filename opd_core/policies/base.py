"""The policy interface: an abstract base every policy kind implements (this module imports nothing else of the
project; the kinds are registered by name in `opd_core.registry`)."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from opd_core.envs.base import Observation
    from opd_core.tokenizer import ActionTokenizer


class Policy(torch.nn.Module, metaclass=abc.ABCMeta):
    """A tokenized-action policy. Subclasses set `kind` and implement `forward` and `arch_config` (abstract: a
    subclass without them cannot be instantiated); `build` when the kind can start from scratch.

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

    @abc.abstractmethod
    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, chunk_size * 7, 256] (see the class docstring)."""

    def sample(
        self, obs: Observation, temperature: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bins [B, chunk*7], their log-probs at `temperature`, logits at temperature 1 [B, chunk*7, 256])."""
        logits = self(obs).float()
        bins, logp = sample_bins(logits, temperature, generator)
        return bins, logp, logits

    @abc.abstractmethod
    def arch_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (saved in checkpoints)."""

    @classmethod
    def build(cls, arch: dict[str, Any], tokenizer: ActionTokenizer) -> Policy:
        """A fresh policy of this kind from its `arch_config()` and action tokenizer."""
        raise NotImplementedError(
            f"{cls.kind or cls.__name__} policies are loaded from a checkpoint, not built from scratch"
        )

    @classmethod
    def from_checkpoint(cls, directory: Path, arch: dict[str, Any], tokenizer: ActionTokenizer, device: str) -> Policy:
        """Restore from an OPD checkpoint folder (default: `build`, move to `device`, `load_weights`)."""
        policy = cls.build(arch, tokenizer).to(device)
        policy.load_weights(directory)
        return policy

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


def sample_bins(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bin per dimension at `temperature` (0 = argmax); returns (bins [B, D], their log-probs).

    Raises FloatingPointError when sampling meets non-finite logits (a diverged policy)."""
    if temperature == 0:
        bins = logits.argmax(-1)
        logp = torch.log_softmax(logits, -1).gather(-1, bins[..., None])[..., 0]
        return bins, logp
    scaled = torch.log_softmax(logits / temperature, -1)
    flat = scaled.reshape(-1, scaled.shape[-1]).exp()
    if not torch.isfinite(flat).all():
        raise FloatingPointError("the policy's action logits are not finite: cannot sample from them")
    bins = torch.multinomial(flat, 1, generator=generator).view(scaled.shape[:-1])
    return bins, scaled.gather(-1, bins[..., None])[..., 0]
