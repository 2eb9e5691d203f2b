"""Tiny runs for a lab with real workers: their config, waiting for one to end, the steps it stored."""

from __future__ import annotations

from pathlib import Path

from polling import wait_for
from tinyrun import tiny_config

SLOW_STEPS = dict(pipeline="grpo", max_episode_steps=16, batch_tasks=2, group_size=4, eval_every=0, videos_per_eval=0)
"""A few tenths of a second per step on this machine, no evaluation: long enough to act on a run mid-way."""


def run_config(**changes) -> dict:
    """A tiny GRPO run's config as the app submits it (the lab sets its out_dir)."""
    return tiny_config(Path("set-by-the-lab"), **{"pipeline": "grpo", **changes}).to_dict()


def wait_until_ended(lab, run_id: int, timeout: float):
    """The run once it is neither queued nor running (its final row)."""
    return wait_for(
        lambda: (run := lab.get_run(run_id)).status not in ("queued", "running") and run,
        timeout,
        f"run {run_id} to end",
    )


def stored_steps(lab, run_id: int, key: str) -> list[int]:
    """The steps at which the store holds `key` for the run."""
    series = lab.metrics([run_id], [key]).get(run_id, {}).get(key)
    return [] if series is None else series.steps.tolist()
