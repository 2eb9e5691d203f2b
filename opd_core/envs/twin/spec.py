"""The dual-arm simulator's registry entry (`opd_core.registry.ENVS["twin"]`)."""

from __future__ import annotations

from functools import partial

from opd_core.envs.base import EnvSpec, TaskSuiteProvider
from opd_core.envs.twin.sim import ACTION_DIM, PROPRIO_DIM, TwinVecEnv
from opd_core.envs.twin.tasks import CATALOG
from opd_core.tokenizer import ActionTokenizer


def twin_catalog() -> TaskSuiteProvider:
    return CATALOG


ENV = EnvSpec(
    make=TwinVecEnv,
    catalog=twin_catalog,
    fresh_student_tokenizer=partial(ActionTokenizer.identity, ACTION_DIM),  # native range [-1, 1], 14 dims
    proprio_dim=PROPRIO_DIM,
)
