"""The scripted LIBERO-Object expert as a `Policy` (kind `libero_expert`): a teacher with calibrated logits.

It has no trainable weights: its logits are `expert.expert_logits` of the expert's action in the observed state.
The state comes from `Observation.state`, which the LIBERO env fills and the rollout keeps for every visited state
(a learned student never reads it). Acting greedily (temperature 0) it executes the expert's action rounded to
the nearest bin, so `opd eval` of an expert checkpoint measures the expert itself.

`opd_core.registry` lists the class as the teacher kind `libero_expert` (imported on first lookup; importing it
imports no LIBERO package). Make a checkpoint with `save_expert_checkpoint`.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opd_core.envs.base import Observation
from opd_core.envs.libero.expert import ExpertParams, LogitParams, expert_actions, expert_logits
from opd_core.policies.base import Policy
from opd_core.tokenizer import ActionTokenizer

KIND = "libero_expert"


class LiberoExpertPolicy(Policy):
    kind = KIND

    def __init__(
        self,
        tokenizer: ActionTokenizer,
        logit_params: LogitParams = LogitParams(),
        expert_params: ExpertParams = ExpertParams(),
    ):
        super().__init__()
        self.tokenizer = tokenizer
        self.logit_params = logit_params
        self.expert_params = expert_params
        # No weights; one frozen scalar gives the module a device and a (trivial) state dict for checkpoints.
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def states(self, obs: Observation) -> np.ndarray:
        if obs.state is None:
            raise RuntimeError(
                "the libero_expert teacher needs the privileged simulator state of each observation "
                "(Observation.state); only states visited in a LIBERO env carry it"
            )
        return np.asarray(obs.state, dtype=np.float32)

    def actions(self, obs: Observation) -> np.ndarray:
        """The expert's continuous actions [B, 7]."""
        return expert_actions(self.states(obs), self.expert_params)

    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        logits = expert_logits(self.actions(obs), self.tokenizer, self.logit_params)
        return torch.from_numpy(logits).to(self.device)

    @classmethod
    def build(cls, arch: dict[str, Any], tokenizer: ActionTokenizer) -> LiberoExpertPolicy:
        return cls(tokenizer, _from_dict(LogitParams, arch.get("logits")), _from_dict(ExpertParams, arch.get("expert")))

    def arch_config(self) -> dict[str, Any]:
        return {
            "logits": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.logit_params).items()},
            "expert": asdict(self.expert_params),
        }


def _from_dict(cls, data: dict | None):
    known = {f.name for f in fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (data or {}).items() if k in known}
    return cls(**values)


def save_expert_checkpoint(
    directory: str | Path, tokenizer: ActionTokenizer | None = None, logit_params: LogitParams = LogitParams()
) -> Path:
    """Write a teacher checkpoint for the expert (identity tokenizer: LIBERO's actions already lie in [-1, 1])."""
    from opd_core.checkpoint import save_checkpoint

    policy = LiberoExpertPolicy(tokenizer or ActionTokenizer.identity(), logit_params)
    return save_checkpoint(directory, policy, step=0, extra={"note": "privileged scripted LIBERO-Object expert"})
