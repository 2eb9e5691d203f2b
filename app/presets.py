"""Sweep presets: the paper's comparisons as (base config dict, grid) pairs for `worker.api.launch_sweep`.

Each preset starts from the researcher's own base config (the Launch form: suite, student, teacher, batch,
steps) and changes only what the comparison is about, so every arm of a sweep shares everything else. Seeds
are one more grid axis (`with_seeds`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.forms import UNSEEN_SUITE, catalog_of, field_words
from opd_core.config import ConfigError, RunConfig

Grid = dict[str, list]
PresetResult = tuple[dict[str, Any], Grid]


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    build: Callable[[Mapping[str, Any]], PresetResult]


def objective_ablation(base: Mapping[str, Any]) -> PresetResult:
    """Paper 4.4 (Fig. 4): reverse KL vs forward KL vs hard CE, on-policy distillation otherwise identical."""
    return {**base, "pipeline": "opd"}, {"objective": ["reverse_kl", "forward_kl", "hard_ce"]}


def opd_vs_grpo(base: Mapping[str, Any]) -> PresetResult:
    """Paper 4.2: dense teacher supervision against sparse-reward GRPO from the same student and batch."""
    return dict(base), {"pipeline": ["opd", "grpo"]}


def distill_then_grpo(base: Mapping[str, Any]) -> PresetResult:
    """Paper Fig. 2: GRPO, distillation, and distillation followed by GRPO (as many GRPO steps as distillation
    steps unless the base says otherwise)."""
    grpo_steps = int(base.get("grpo_steps") or 0) or int(base.get("steps", RunConfig.steps))
    return {**base, "grpo_steps": grpo_steps}, {"pipeline": ["grpo", "opd", "opd_then_grpo"]}


def group_size_ablation(base: Mapping[str, Any]) -> PresetResult:
    """Paper 4.4 (Fig. 5): G in {2, 4, 8} with the number of instructions per step held fixed."""
    return {**base, "pipeline": "opd"}, {"group_size": [2, 4, 8]}


def forgetting_study(base: Mapping[str, Any]) -> PresetResult:
    """Paper 4.3 (Fig. 3): offline SFT vs GRPO vs OPD from one pre-trained student, evaluating the held-out
    unseen tasks at every checkpoint (about ten checkpoints per run so each run draws a path)."""
    steps = int(base.get("steps", RunConfig.steps))
    unseen = list(base.get("unseen_tasks") or _held_out_tasks(str(base.get("env") or RunConfig.env)))
    eval_every = int(base.get("eval_every") or 0)
    if eval_every <= 0 or eval_every > max(1, steps // 5):
        eval_every = max(1, steps // 10)
    return (
        {**base, "unseen_tasks": unseen, "eval_every": eval_every, "save_every": eval_every},
        {"pipeline": ["sft", "grpo", "opd"]},
    )


def _held_out_tasks(env: str) -> list[str]:
    """The environment's held-out `unseen` suite (none when its catalogue has no such suite)."""
    catalog = catalog_of(env)
    return catalog.suite_tasks(UNSEEN_SUITE) if catalog is not None and UNSEEN_SUITE in catalog.suites else []


PRESETS = (
    Preset(
        "objective_ablation", "Objective ablation", "reverse KL vs forward KL vs hard CE (Fig. 4)", objective_ablation
    ),
    Preset("opd_vs_grpo", "OPD vs GRPO", "dense teacher supervision vs sparse reward (Fig. 2)", opd_vs_grpo),
    Preset(
        "distill_then_grpo",
        "Distill then GRPO",
        "GRPO, distillation, and both in sequence (Fig. 2, Table 2)",
        distill_then_grpo,
    ),
    Preset("group_size", "Group size G", "G in {2, 4, 8} (Fig. 5)", group_size_ablation),
    Preset(
        "forgetting", "Forgetting study", "offline SFT vs GRPO vs OPD, seen and unseen tasks (Fig. 3)", forgetting_study
    ),
)
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}


def with_seeds(grid: Mapping[str, list], seeds: list[int]) -> Grid:
    """Seeds as one more axis; a single seed is a plain config value, not an axis."""
    return {**grid, "seed": list(seeds)} if len(seeds) > 1 else dict(grid)


def expand(base: Mapping[str, Any], grid: Mapping[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid applied to the base, in grid order (as launch_sweep queues them)."""
    names = list(grid)
    return [{**base, **dict(zip(names, values))} for values in itertools.product(*(grid[n] for n in names))]


def validate_sweep(base: Mapping[str, Any], grid: Mapping[str, list]) -> tuple[dict[str, Any], ConfigError] | None:
    """None when every arm validates; else the first failing arm's grid values and the error (whose field the
    Launch page points at)."""
    for config in expand(base, grid):
        try:
            RunConfig.from_dict(config).validate()
        except ConfigError as error:
            return {name: config[name] for name in grid}, error
    return None


def refusal_sentence(preset: Preset, arm: Mapping[str, Any], error: ConfigError) -> str:
    """'Objective ablation, the run with objective reverse_kl: teacher checkpoint (teacher_checkpoint): pipeline
    opd needs ...': the preset, its arm and the field in words (with the form's label), never a dict."""
    reason = getattr(error, "reason", None) or str(error)
    where = ", ".join(f"{field_words(name)} {value_words(value)}" for name, value in arm.items())
    field = f"{field_words(error.field)} ({error.field})"
    return f"{preset.title}, the run with {where}: {field}: {reason}" if where else f"{preset.title}: {field}: {reason}"


def value_words(value: Any) -> str:
    """A grid value as the form shows it (a choice's own name, a number, a list joined by commas)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(value_words(v) for v in value) or "none"
    return str(value)


def sweep_name(preset: Preset, base: Mapping[str, Any]) -> str:
    return f"{preset.key}-{base.get('suite', '')}"
