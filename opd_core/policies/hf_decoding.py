"""Action-token decoding for transformers VLAs: the teacher-forced scoring pass and cached sampling.

Both build the same sequence: the (left-padded) prompt with its image, then action tokens. Position ids follow
the attention mask so that left padding does not shift them (PaliGemma counts positions from 1). A prefix-LM
(PaliGemma's `token_type_ids`) sees the prompt bidirectionally and the action tokens causally, in both passes.

`sample_with_cache` encodes the prompt once (`use_cache=True`) and then costs one incremental step per action
token (`past_key_values`), all queries of the batch together; it draws from the generator in the same order as
the uncached loop, so the two give the same bins for the same generator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from opd_core.policies.base import sample_bins

POSITION_OFFSET = {"paligemma": 1}
"""model_type -> index of the first position (PaliGemma's positions are 1-indexed)."""


def takes_position_ids(model) -> bool:
    """Whether the model's forward accepts `position_ids` (OpenVLA's remote code does not)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


def supports_batched_cache(model) -> bool:
    """Transformers' own classes decode a batch incrementally; remote code may not (OpenVLA's asserts batch 1)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__module__.startswith("transformers.") and takes_position_ids(base)


def position_offset(model) -> int:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return POSITION_OFFSET.get(getattr(base.config, "model_type", ""), 0)


def _positions(mask: torch.Tensor, offset: int) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0) + offset


def full_sequence(model, inputs: dict[str, torch.Tensor], appended: torch.Tensor) -> dict[str, torch.Tensor]:
    """Model kwargs for one teacher-forced pass over prompt + `appended` action ids [B, n]."""
    ones = torch.ones_like(appended)
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], appended], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], ones], dim=1)
    if "token_type_ids" in inputs:  # action tokens belong to the causal suffix
        out["token_type_ids"] = torch.cat([inputs["token_type_ids"], ones], dim=1)
    if takes_position_ids(model):
        out["position_ids"] = _positions(out["attention_mask"], position_offset(model))
    return out


@torch.no_grad()
def sample_with_cache(
    model,
    inputs: dict[str, torch.Tensor],
    dims: int,
    to_bins: Callable[[torch.Tensor], torch.Tensor],
    to_ids: Callable[[torch.Tensor], torch.Tensor],
    temperature: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Sample `dims` action tokens for every query of `inputs`: bins [B, dims], log-probs [B, dims] and bin logits
    [B, dims, 256]. `to_bins` maps vocabulary logits to bin logits, `to_ids` bins to token ids. Returns None when
    the model keeps no cache (e.g. gradient checkpointing in training mode), so the caller decodes without one."""
    offset = position_offset(model)
    mask = inputs["attention_mask"]
    positions = _positions(mask, offset)
    out = model(**inputs, position_ids=positions, use_cache=True)
    cache = out.past_key_values
    if cache is None:
        return None
    logits = to_bins(out.logits[:, -1:])
    next_position = positions[:, -1:] + 1
    chosen, all_logp, all_logits = [], [], []
    for d in range(dims):
        bins, logp = sample_bins(logits, temperature, generator)
        chosen.append(bins)
        all_logp.append(logp)
        all_logits.append(logits)
        if d == dims - 1:
            break
        mask = torch.cat([mask, torch.ones_like(bins)], dim=1)
        out = model(
            input_ids=to_ids(bins),
            attention_mask=mask,
            position_ids=next_position,
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        next_position = next_position + 1
        logits = to_bins(out.logits[:, -1:])
    return torch.cat(chosen, 1), torch.cat(all_logp, 1), torch.cat(all_logits, 1)
