"""Figure 2 measured to the end: runs of `preset.extend_methods` continue past `preset.steps` until they reach the
threshold (the highest of `preset.reach_fractions` x the teacher's greedy seen success) or the cap.

The cap is `extend_factor` x the steps reverse KL (the paper's distillation) needed to reach that threshold, its
slowest seed; when a reverse-KL seed never reached it within `steps`, `extend_factor` x `steps`. It is rounded up to
the evaluation cadence and never below `steps`. An extension is an ordinary resume of the same run folder with a
longer length, `extend_chunk` steps per round (each round ends with an evaluation, so a run stops within one round
of its threshold step); the folder's metrics say where each run stands, so an interrupted study continues.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from opd_core.config import RunConfig
from opd_core.study.analysis import first_reach
from opd_core.study.plan import RunSpec, TaskGroups
from opd_core.study.presets import StudyPreset

DISTILLATION = "reverse_kl"
"""The method whose steps set the cap (and the denominator of the speed-up)."""


@dataclass(frozen=True)
class Extension:
    """One suite's extension target."""

    threshold: float
    """Greedy seen success a run must reach (fraction x teacher)."""
    cap: int
    """The most steps an extended run gets."""
    distill_steps: list[int | None]
    """Reverse KL's first step at the threshold, per seed (None: not within `steps`)."""

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "cap": self.cap, "distill_steps": self.distill_steps}


def extension_cap(preset: StudyPreset, distill_steps: list[int | None]) -> int:
    """`extend_factor` x the slowest reverse-KL seed's steps (x `steps` when one never reached), rounded up to
    the evaluation cadence, at least `steps`."""
    needed = preset.steps if not distill_steps or None in distill_steps else max(distill_steps)
    cadence = max(1, preset.eval_every)
    cap = math.ceil(preset.extend_factor * needed / cadence) * cadence
    return max(preset.steps, cap)


def run_length(config: RunConfig, length: int) -> RunConfig:
    """`config` continued to `length` total steps (opd_then_grpo: a longer GRPO part)."""
    if config.pipeline == "opd_then_grpo":
        return config.replace(grpo_steps=length - config.steps)
    return config.replace(steps=length)


def plan_extension(preset: StudyPreset, teacher_seen: float, distill_runs: list[dict]) -> Extension | None:
    """The suite's threshold and cap from its reverse-KL runs (analysis.read_run's dicts); None when the teacher's
    success is 0 (a fraction of it means nothing)."""
    threshold = max(preset.reach_fractions) * teacher_seen
    if threshold <= 0:
        return None
    steps = []
    for run in distill_runs:
        steps.append(first_reach(run["eval_steps"], run["eval"]["seen_success"], threshold))
    return Extension(threshold, extension_cap(preset, steps), steps)


def extend_runs(
    preset: StudyPreset,
    specs: list[RunSpec],
    configs: dict[RunSpec, RunConfig],
    extensions: dict[str, Extension | None],
    groups: dict[str, TaskGroups],
    executor,
    *,
    log: Callable[[str], None] = lambda message: None,
) -> int:
    """Extend every run of `preset.extend_methods` round by round until each reached its suite's threshold or its
    cap; returns how many extension rounds of single runs ran now."""
    chunk = preset.extend_chunk or max(1, preset.eval_every)
    candidates = [s for s in specs if s.method in preset.extend_methods and extensions.get(s.suite) is not None]
    ran = 0
    while True:
        pending = []
        for spec in candidates:
            target = extensions[spec.suite]
            run = executor.read(spec, configs[spec], groups[spec.suite])
            length = run["eval_steps"][-1] if run["eval_steps"] else 0
            if (
                length >= target.cap
                or first_reach(run["eval_steps"], run["eval"]["seen_success"], target.threshold) is not None
            ):
                continue
            pending.append((spec, run_length(configs[spec], min(target.cap, length + chunk))))
        if not pending:
            return ran
        log(
            f"[study] extending {len(pending)} run(s) toward their threshold: "
            + ", ".join(f"{s.suite}/{s.run_id} -> {c.total_steps}" for s, c in pending)
        )
        ran += executor.run_all(pending, extendable=lambda config: True)
