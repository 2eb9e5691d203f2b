"""Phase 2: the frozen teacher gives its logits on every state the student visited (batched, no gradients)."""

from __future__ import annotations

import numpy as np
import torch

from opd_core.envs.base import Observation
from opd_core.policies.base import Policy


@torch.no_grad()
def label_states(
    teacher: Policy, obs: Observation, actions: torch.Tensor, batch_size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Teacher logits [S, D, K] (float32, on `device`) for every state of `obs`.

    `actions` are the student's sampled bins: an autoregressive teacher scores dimension d given the student's
    bins for dimensions before d (teacher forcing), as token-level distillation of language models does.
    """
    chunks = []
    for start in range(0, len(obs), batch_size):
        index = np.arange(start, min(start + batch_size, len(obs)))
        chunks.append(teacher(obs.take(index), actions[index].to(teacher.device)).float().to(device))
    return torch.cat(chunks) if chunks else torch.zeros(0)
