"""The Compare page's data and figure build, without Streamlit (the benchmark times exactly this).

One `metrics` query for every selected run and key (plus the time series behind the chosen x-axis), then per
key: each run's curve (x mapped, EMA-smoothed), seeds folded into a mean and band per group, decimated for the
browser, and one Plotly figure with the teachers' success as reference lines on success metrics.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from app.figures import Reference, curves_figure
from app.live_series import SeriesCache
from app.references import teacher_references as teacher_lines
from app.run_groups import RunGroup, group_runs
from app.series import X_AXES, X_AXIS_METRICS, decimate, fold_seeds, to_curve

DEFAULT_KEYS = ("train/success", "train/entropy")
REFERENCE_KEYS = ("train/success", "eval/seen_success")
"""Metrics measured on the runs' seen tasks, where the teacher's seen-task success is a fair reference."""
MAX_POINTS = 2000


@dataclass(frozen=True)
class CompareView:
    groups: list[RunGroup]
    figures: list[tuple[str, go.Figure]]
    data: dict[int, dict[str, Any]]
    """run_id -> key -> series, as fetched (kept for the CSV export)."""


def build_view(
    api: Any,
    runs: Sequence[Any],
    keys: Sequence[str],
    axis: str = "step",
    smoothing: float = 0.0,
    references: Sequence[Reference] = (),
    max_points: int = MAX_POINTS,
    cache: SeriesCache | None = None,
) -> CompareView:
    """`runs` must be fresh records (their status and step decide what `cache` re-reads)."""
    groups = group_runs(runs)
    fetch_keys = list(dict.fromkeys([*keys, *([X_AXIS_METRICS[axis]] if axis in X_AXIS_METRICS else [])]))
    if cache is not None:
        data = cache.fetch(api, runs, fetch_keys)
    else:
        data = api.metrics([run.id for run in runs], fetch_keys) if runs and fetch_keys else {}
    figures = []
    for key in keys:
        bands = []
        for group in groups:
            curves = [
                to_curve(data[run_id][key], axis, data[run_id], smoothing)
                for run_id in group.run_ids
                if key in data.get(run_id, {})
            ]
            if curves:
                bands.append((group.legend, decimate(fold_seeds(curves), max_points)))
        figures.append((key, curves_figure(key, bands, X_AXES[axis], references if key in REFERENCE_KEYS else ())))
    return CompareView(groups, figures, data)


def teacher_references(api: Any, runs: Sequence[Any], all_runs: Sequence[Any]) -> list[Reference]:
    """One dashed line per distinct teacher success of the selected runs' teachers (the lab's own and the shipped
    or otherwise recorded ones, see app.references)."""
    return [Reference(label, value) for label, value in teacher_lines(api, runs, all_runs)]


def runs_csv(runs: Sequence[Any], data: Mapping[int, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Long format, one line per (run, key, step), raw values: what a notebook wants to re-plot (select
    time/env_steps or time/wall_seconds as metrics to get the other x-axes)."""
    names = {run.id: run.name for run in runs}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run_id", "run_name", "key", "step", "value"])
    for run_id, by_key in data.items():
        for key in keys:
            series = by_key.get(key)
            if series is None:
                continue
            for step, value in zip(series.steps.tolist(), series.values.tolist()):
                writer.writerow([run_id, names.get(run_id, ""), key, step, repr(value)])
    return out.getvalue()


def default_keys(available: Sequence[str]) -> list[str]:
    return [key for key in DEFAULT_KEYS if key in available] or list(available[:2])
