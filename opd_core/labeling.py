"""Phase 2: the frozen teacher gives its logits on every state the student visited (batched, no gradients)."""

from __future__ import annotations

import numpy as np
import torch

from opd_core.envs.base import Observation
from opd_core.policies.base import Policy


@torch.no_grad()
def label_states(
    teacher: Policy,
    obs: Observation,
    actions: torch.Tensor,
    batch_size: int,
    device: torch.device | str = "cpu",
    parts: list[np.ndarray] | None = None,
) -> torch.Tensor:
    """Teacher logits [S, D, K] (float32, on `device`) for every state of `obs`.

    `actions` are the student's sampled bins: an autoregressive teacher scores dimension d given the student's
    bins for dimensions before d (teacher forcing), as token-level distillation of language models does.

    `parts`: state indices labeled each on its own, in batches of their own (the batches a rank of a multi-rank
    run makes); default: all states in order.
    """
    if parts is None or len(parts) <= 1:
        return _label(teacher, obs, actions, np.arange(len(obs)), batch_size, device)
    labeled = [(index, _label(teacher, obs, actions, index, batch_size, device)) for index in parts if len(index)]
    out = torch.empty((len(obs), *labeled[0][1].shape[1:]), device=device)
    for index, logits in labeled:
        out[torch.from_numpy(index).to(device)] = logits
    return out


def _label(
    teacher: Policy, obs: Observation, actions: torch.Tensor, states: np.ndarray, batch_size: int, device
) -> torch.Tensor:
    chunks = []
    for start in range(0, len(states), batch_size):
        index = states[start : start + batch_size]
        chunks.append(teacher(obs.take(index), actions[index].to(teacher.device)).float().to(device))
    return torch.cat(chunks) if chunks else torch.zeros(0)
