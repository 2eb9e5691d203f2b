"""Distill then GRPO as the paper runs it: GRPO starts from the distilled student once distillation has plateaued.

The switch step of a seed is read off that seed's reverse-KL run (the study's distillation, not run twice): the
first evaluated step s (at least `plateau_evals` evaluations in) where the best seen success so far exceeds the
best `plateau_evals` evaluations earlier by no more than `plateau_gain`, or `distill_steps_before_grpo` if that
comes first. GRPO then runs from the reverse-KL checkpoint at s for the remaining `steps - s` steps, so that every
method of Table 2 has the same number of on-policy steps. The method's curves are the reverse-KL run's up to s and
the GRPO run's after it.
"""

from __future__ import annotations

import math

from opd_core.study.analysis import aggregate
from opd_core.study.presets import StudyPreset

HANDOFF = "opd_then_grpo"


def rule(preset: StudyPreset) -> str:
    return (
        f"GRPO takes over at the first evaluation where reverse KL's best seen success has not improved by more "
        f"than {preset.plateau_gain:.2f} over the last {preset.plateau_evals} evaluations (every "
        f"{preset.eval_every} steps), at step {preset.distill_steps_before_grpo} at the latest; it starts from that "
        f"reverse-KL checkpoint (same seed) and runs to step {preset.steps}"
    )


def switch_step(preset: StudyPreset, distill_run: dict) -> tuple[int, bool]:
    """(the step GRPO takes over at, whether distillation had plateaued there by the rule)."""
    latest = preset.distill_steps_before_grpo
    steps, values = distill_run["eval_steps"], distill_run["eval"]["seen_success"]
    best, running = [], -math.inf
    for value in values:
        running = max(running, value if not math.isnan(value) else -math.inf)
        best.append(running)
    k = preset.plateau_evals
    for i in range(k, len(steps)):
        if steps[i] > latest:
            break
        if best[i] - best[i - k] <= preset.plateau_gain + 1e-9:
            return steps[i], True
    if latest not in steps:
        raise ValueError(f"the reverse-KL run {distill_run['folder']} has no evaluation at step {latest}")
    return latest, False


def stitch(distill_run: dict, grpo_run: dict, step: int) -> dict:
    """One run dict: reverse KL up to `step`, then the GRPO run shifted by `step` (its step-0 evaluation is the
    same checkpoint as reverse KL's at `step`, and is left out). Seconds per step: the GRPO part's."""
    keep = [i for i, s in enumerate(distill_run["steps"]) if s <= step]
    keep_eval = [i for i, s in enumerate(distill_run["eval_steps"]) if s <= step]
    later_eval = [i for i, s in enumerate(grpo_run["eval_steps"]) if s > 0]

    def joined(first: list, second: list, first_index: list[int], second_index: list[int] | None = None) -> list:
        second_index = range(len(second)) if second_index is None else second_index
        return [first[i] for i in first_index] + [second[i] for i in second_index]

    distill_length = distill_run["steps"][-1] if distill_run["steps"] else 0
    distill_wall = distill_run["wall_seconds"] * step / distill_length if distill_length else math.nan
    return {
        "folder": grpo_run["folder"],
        "distill_folder": distill_run["folder"],
        "steps": [distill_run["steps"][i] for i in keep] + [step + s for s in grpo_run["steps"]],
        "train": {
            name: joined(distill_run["train"][name], grpo_run["train"][name], keep) for name in grpo_run["train"]
        },
        "eval_steps": [distill_run["eval_steps"][i] for i in keep_eval]
        + [step + grpo_run["eval_steps"][i] for i in later_eval],
        "eval": {
            name: joined(distill_run["eval"][name], grpo_run["eval"][name], keep_eval, later_eval)
            for name in grpo_run["eval"]
        },
        "per_task": {
            task: joined(distill_run["per_task"][task], grpo_run["per_task"][task], keep_eval, later_eval)
            for task in grpo_run["per_task"]
        },
        "seconds_per_step": grpo_run["seconds_per_step"],
        "wall_seconds": distill_wall + grpo_run["wall_seconds"],
    }


def summarize(preset: StudyPreset, switches: list[tuple[int, bool]], distill_runs: list[dict], stitched: list[dict]):
    """What GRPO did after distillation, per seed: success at the switch, after GRPO (at `steps`), and reverse KL
    continued to `steps` instead (Table 2's distill row)."""

    def at(run: dict, step: int) -> float | None:
        return run["eval"]["seen_success"][run["eval_steps"].index(step)] if step in run["eval_steps"] else None

    at_switch = [at(run, step) for run, (step, _) in zip(distill_runs, switches)]
    after = [at(run, preset.steps) for run in stitched]
    continued = [at(run, preset.steps) for run in distill_runs]
    return {
        "rule": rule(preset),
        "switch_steps": [step for step, _ in switches],
        "plateaued": [plateaued for _, plateaued in switches],
        "at_switch": aggregate(at_switch),
        "after_grpo": aggregate(after),
        "gain": aggregate(_differences(after, at_switch)),
        "distill_continued": aggregate(continued),
        "gain_vs_distill_continued": aggregate(_differences(after, continued)),
    }


def _differences(a: list[float | None], b: list[float | None]) -> list[float | None]:
    return [None if x is None or y is None else x - y for x, y in zip(a, b)]
