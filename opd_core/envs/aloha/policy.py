"""The scripted ALOHA expert as a `Policy` (teacher kind `aloha_expert`): calibrated logits, no weights.

The expert runs inside the environment workers, next to the physics (the training process has no MuJoCo): every
observation's privileged state starts with the expert's normalized 14-D action at that state (`tasks.STATE_DIM`),
and the rollout keeps that state for every visited state, so the teacher labels the student's own states. Its
logits are a Gaussian over the bins around that action (`opd_core.envs.libero.expert.expert_logits`); acting
greedily it executes the action rounded to the nearest bin, so `opd eval` of an expert checkpoint measures the
expert through the same 256-bin action interface a student has.

`opd_core.registry` lists the class as `aloha_expert` (imported on first lookup). Make a checkpoint with
`save_expert_checkpoint`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opd_core.envs.aloha.tasks import ACTION_DIM
from opd_core.envs.base import Observation
from opd_core.envs.libero.expert import LogitParams, expert_logits
from opd_core.policies.base import Policy
from opd_core.tokenizer import ActionTokenizer

KIND = "aloha_expert"


@dataclass(frozen=True)
class AlohaLogitParams(LogitParams):
    sigma: tuple[float, ...] = (0.02,) * ACTION_DIM
    """Std per dimension in normalized units (0.02 is about 2.5 bins, roughly 0.01-0.03 rad of a joint)."""


class AlohaExpertPolicy(Policy):
    kind = KIND

    def __init__(self, tokenizer: ActionTokenizer, logit_params: AlohaLogitParams = AlohaLogitParams()):
        super().__init__()
        if tokenizer.dim != ACTION_DIM:
            raise ValueError(f"the ALOHA expert acts in {ACTION_DIM} dimensions, not {tokenizer.dim}")
        self.tokenizer = tokenizer
        self.logit_params = logit_params
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # a device and a state dict

    def actions(self, obs: Observation) -> np.ndarray:
        """The expert's actions [B, 14] in the adapter's normalized units."""
        if obs.state is None or obs.state.shape[1] < ACTION_DIM:
            raise RuntimeError(
                "the aloha_expert teacher needs the privileged state of each observation (Observation.state); "
                "only states visited in the aloha env carry it"
            )
        return np.asarray(obs.state[:, :ACTION_DIM], dtype=np.float64)

    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        logits = expert_logits(self.tokenizer.unnormalize(self.actions(obs)), self.tokenizer, self.logit_params)
        return torch.from_numpy(logits).to(self.device)

    @classmethod
    def build(cls, arch: dict[str, Any], tokenizer: ActionTokenizer) -> AlohaExpertPolicy:
        data = arch.get("logits") or {}
        params = AlohaLogitParams(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in ("sigma", "floor")}
        )
        return cls(tokenizer, params)

    def arch_config(self) -> dict[str, Any]:
        return {"logits": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.logit_params).items()}}


def save_expert_checkpoint(directory: str | Path, logit_params: AlohaLogitParams = AlohaLogitParams()) -> Path:
    """A teacher checkpoint of the expert (identity tokenizer: the adapter's actions already lie in [-1, 1])."""
    from opd_core.checkpoint import save_checkpoint

    policy = AlohaExpertPolicy(ActionTokenizer.identity(ACTION_DIM), logit_params)
    return save_checkpoint(directory, policy, step=0, extra={"note": "privileged scripted ALOHA expert"})
