"""The recipes the study runs, read from the `configs/` YAML files (the ones `opd train configs/...` uses).

Roles: `base` (pretrain_base.yaml), `teacher` (teacher_<suite>.yaml), `student` (student_<suite>_1demo.yaml) and
`opd` (opd_<suite>_reverse_kl.yaml, the template of every method run). A suite without its own files uses the
object suite's recipe with the suite swapped in.
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


def recipe_path(role: str, suite: str, config_dir: Path = CONFIG_DIR) -> Path:
    pattern = RECIPE_FILES[role]
    path = config_dir / pattern.format(suite=suite)
    if not path.is_file():
        path = config_dir / pattern.format(suite=FALLBACK_SUITE)
    if not path.is_file():
        raise ConfigError("<file>", f"recipe for {role} not found: {path}")
    return path


def load_recipe(role: str, suite: str, config_dir: Path = CONFIG_DIR) -> RunConfig:
    """The YAML recipe of `role`, with the suite set (its task list and paths are the caller's to override)."""
    config = RunConfig.load(recipe_path(role, suite, config_dir))
    if role != "base":
        config = config.replace(suite=suite)
    return config
