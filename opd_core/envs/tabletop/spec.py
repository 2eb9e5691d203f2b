"""The tabletop simulator's registry entry (`opd_core.registry.ENVS["tabletop"]`)."""

from __future__ import annotations

from opd_core.envs.base import EnvSpec, TaskSuiteProvider
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG
from opd_core.tokenizer import ActionTokenizer


def tabletop_catalog() -> TaskSuiteProvider:
    return CATALOG


ENV = EnvSpec(
    make=TabletopVecEnv,
    catalog=tabletop_catalog,
    fresh_student_tokenizer=ActionTokenizer.identity,  # the simulator's native action range is the dataset statistic
)
