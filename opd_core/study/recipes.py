"""The recipes the study runs, read from the `configs/` YAML files (the ones `opd train configs/...` uses).

Roles: `base` (pretrain_base.yaml), `teacher` (teacher_<suite>.yaml), `student` (student_<suite>_1demo.yaml) and
`opd` (opd_<suite>_reverse_kl.yaml, the template of every method run). A suite without its own files uses the
object suite's recipe with the suite swapped in. The dual-arm twin env has its own chain: twin_pretrain_base.yaml,
twin_teacher.yaml, twin_student.yaml and twin_opd_reverse_kl.yaml (RoboTwin protocol: many-demo SFT student).
"""

from __future__ import annotations

from pathlib import Path

from opd_core.config import ConfigError, RunConfig
from opd_core.resources import CONFIG_DIR

RECIPE_FILES = {
    "base": "pretrain_base.yaml",
    "teacher": "teacher_{suite}.yaml",
    "student": "student_{suite}_1demo.yaml",
    "opd": "opd_{suite}_reverse_kl.yaml",
}
FALLBACK_SUITE = "object"
ENV_RECIPE_FILES = {
    "twin": {
        "base": "twin_pretrain_base.yaml",
        "teacher": "twin_teacher.yaml",
        "student": "twin_student.yaml",
        "opd": "twin_opd_reverse_kl.yaml",
    }
}
"""Simulators with their own recipe chain (the tabletop's is RECIPE_FILES)."""


def recipe_path(role: str, suite: str, config_dir: Path = CONFIG_DIR, env: str = "tabletop") -> Path:
    if env in ENV_RECIPE_FILES:
        path = config_dir / ENV_RECIPE_FILES[env][role]
        if not path.is_file():
            raise ConfigError("<file>", f"recipe for {role} of the {env} env not found: {path}")
        return path
    pattern = RECIPE_FILES[role]
    path = config_dir / pattern.format(suite=suite)
    if not path.is_file():
        path = config_dir / pattern.format(suite=FALLBACK_SUITE)
    if not path.is_file():
        raise ConfigError("<file>", f"recipe for {role} not found: {path}")
    return path


def load_recipe(role: str, suite: str, config_dir: Path = CONFIG_DIR, env: str = "tabletop") -> RunConfig:
    """The YAML recipe of `role`, with the suite set (its task list and paths are the caller's to override)."""
    config = RunConfig.load(recipe_path(role, suite, config_dir, env))
    if role != "base":
        config = config.replace(suite=suite)
    return config
