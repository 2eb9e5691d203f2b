"""Miniature study presets shared by the study tests: 2 steps at B=2 x G=2, one evaluation state, small batches.

Each test states only what its study differs in (its methods, tasks, policy size, assets); the paper's claims are
measured by `opd reproduce`, never by these.
"""

from __future__ import annotations

from typing import Any

from opd_core.study import StudyPreset
from tinyrun import TINY_POLICY

SMALL_RUNS = {"videos_per_eval": 0, "minibatch_size": 64, "updates_per_step": 1, "sft_batch_size": 32}
"""Overrides of every run of a miniature study: no videos, one small update per step."""

SHIPPED_RUNS = {**SMALL_RUNS, "label_batch_size": 64}
"""For studies from the shipped checkpoints, whose policy size is kept."""


def tiny_runs(max_episode_steps: int) -> dict[str, Any]:
    """For studies that make their own tiny assets: a tiny policy, short episodes."""
    return {**TINY_POLICY, **SMALL_RUNS, "eval_init_states": 1, "max_episode_steps": max_episode_steps}


def tiny_assets(steps: int, student: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The study's own base, teacher and student recipes cut to `steps` (the student changed by `student`)."""
    short = {"steps": steps, "eval_every": 0, "save_every": 0, "unseen_tasks": []}
    return {
        "base": {**short, "num_demos": 2, "lr": 3e-3},
        "teacher": {**short, "num_demos": 2},
        "student": {**short, **student},
    }


def mini_preset(name: str, **changes: Any) -> StudyPreset:
    """A miniature study: every field the tests share, then `changes`."""
    shared = dict(
        name=name,
        seeds=1,
        steps=2,
        batch_tasks=2,
        group_size=2,
        eval_every=1,
        eval_init_states=1,
        distill_steps_before_grpo=1,
        sft_steps=2,
        held_out_tasks=1,
        retention_tasks=1,
        seen_tasks=2,
    )
    return StudyPreset(**{**shared, **changes})
