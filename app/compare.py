"""The Compare page's data and figure build, without Streamlit (the benchmark times exactly this).

One `metrics` query for every selected run and key (plus the time series behind the chosen x-axis), then per
key: each run's curve (x mapped, EMA-smoothed, the raw mean kept faintly behind), runs grouped by their settings
or by any config field into a mean and a band (min-max or standard error), decimated for the browser, and one
Plotly figure with the teachers' success as reference lines on success metrics; per-action-dimension metrics as
small multiples; the config diff table and the metric filter.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from app.figures import ACTION_DIMS, Line, Reference, curves_figure, dims_figure
from app.live_series import SeriesCache
from app.references import teacher_references as teacher_lines
from app.run_groups import (
    GROUP_NONE,
    GROUP_SETTINGS,
    IDENTITY_FIELDS,
    SHORT_FIELD_NAMES,
    RunGroup,
    compare_groups,
    differing_fields,
    group_details,
    grouping_fields,
)
from app.series import X_AXES, X_AXIS_METRICS, decimate, fold_seeds, to_curve

DEFAULT_KEYS = ("train/success", "train/entropy")
REFERENCE_KEYS = ("train/success", "eval/seen_success")
"""Metrics measured on the runs' seen tasks, where the teacher's seen-task success is a fair reference."""
MAX_POINTS = 600
"""Points per drawn line at most (min-max per bucket, app.series.decimate)."""
DIM_FAMILIES = {"entropy": "entropy", "reverse_kl": "reverse KL", "forward_kl": "forward KL"}
"""Per-action-dimension metric families (`train/<family>/<dim>`) -> their name on screen."""
MAX_FILTERED_CHARTS = 24


@dataclass(frozen=True)
class CompareView:
    groups: list[RunGroup]
    figures: list[tuple[str, go.Figure]]
    data: dict[int, dict[str, Any]]
    """run_id -> key -> series, as fetched (kept for the CSV export)."""
    dims_figure: go.Figure | None = None


def build_view(
    api: Any,
    runs: Sequence[Any],
    keys: Sequence[str],
    axis: str = "step",
    smoothing: float = 0.0,
    references: Sequence[Reference] = (),
    max_points: int = MAX_POINTS,
    cache: SeriesCache | None = None,
    group_by: str = GROUP_SETTINGS,
    spread: str = "minmax",
    dims_family: str | None = None,
) -> CompareView:
    """`runs` must be fresh records (their status and step decide what `cache` re-reads). One chart per key, and
    with `dims_family` ("entropy", "reverse_kl", "forward_kl") one small-multiples chart of its dimensions."""
    groups = compare_groups(runs, group_by)
    details = group_details(groups, runs)
    dim_keys = [f"train/{dims_family}/{dim}" for dim in ACTION_DIMS] if dims_family else []
    fetch_keys = list(dict.fromkeys([*keys, *dim_keys, *([X_AXIS_METRICS[axis]] if axis in X_AXIS_METRICS else [])]))
    if cache is not None:
        data = cache.fetch(api, runs, fetch_keys)
    else:
        data = api.metrics([run.id for run in runs], fetch_keys) if runs and fetch_keys else {}
    title = legend_title(runs, group_by)

    def lines(key: str) -> list[Line]:
        out = []
        for group in groups:
            members = [run_id for run_id in group.run_ids if key in data.get(run_id, {})]
            if not members:
                continue
            curves = [to_curve(data[run_id][key], axis, data[run_id], smoothing) for run_id in members]
            raw = None
            if smoothing > 0:
                raw = decimate(
                    fold_seeds([to_curve(data[run_id][key], axis, data[run_id]) for run_id in members]), max_points
                )
            out.append(Line(group.legend, decimate(fold_seeds(curves), max_points), raw, details[group.key]))
        return out

    figures = [
        (
            key,
            curves_figure(
                key,
                lines(key),
                X_AXES[axis],
                references if key in REFERENCE_KEYS else (),
                spread=spread,
                legend_title=title,
            ),
        )
        for key in keys
    ]
    dims = None
    if dims_family:
        panels = {dim: lines(key) for dim, key in zip(ACTION_DIMS, dim_keys)}
        panels = {dim: panel for dim, panel in panels.items() if panel}
        if panels:
            dims = dims_figure(dims_family, panels, X_AXES[axis], spread=spread, legend_title=title)
    return CompareView(groups, figures, data, dims)


def view_signature(runs: Sequence[Any], *params: Any) -> tuple:
    """What a drawn view depends on: each run's id, attempt, status and step (a worker commits a step's metrics
    before its progress), and the view's parameters. A live refresh with the same signature as the last draw
    reuses its figures instead of reading and rebuilding them (a stalled or queued run refreshes for nothing)."""
    return tuple((run.id, run.attempt, run.status, run.step) for run in runs), tuple(
        tuple(param) if isinstance(param, list) else param for param in params
    )


def legend_title(runs: Sequence[Any], group_by: str) -> str:
    """What tells the lines apart, once for the legend instead of in every entry."""
    if group_by == GROUP_NONE:
        return "runs"
    if group_by == GROUP_SETTINGS:
        varying = [SHORT_FIELD_NAMES.get(name, name) for name in grouping_fields(runs) if name != "seed"]
        text = "seeds folded" + (f" · differs: {', '.join(varying[:5])}" if varying else "")
        return text + (" …" if len(varying) > 5 else "")
    return f"grouped by {group_by}"


def chart_keys(
    available: Sequence[str], pinned: Sequence[str], pattern: str, limit: int = MAX_FILTERED_CHARTS
) -> tuple[list[str], str | None]:
    """The metrics to chart: the pinned ones, then every available key that `pattern` matches (a regular
    expression, case-insensitive; text that is not a valid one is matched literally). Returns (keys, a note
    for the page: a pattern that is not a regex, or charts left out) -- per-dimension keys are left to their own
    chart unless the pattern names them."""
    pattern = pattern.strip()
    keys = list(pinned)
    note = None
    if pattern:
        try:
            matcher = re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            matcher = re.compile(re.escape(pattern), re.IGNORECASE)
            note = f"'{pattern}' is not a regular expression ({error}): matched as plain text"
        matched = [key for key in available if matcher.search(key) and key not in keys]
        if len(matched) > limit:
            note = f"{len(matched)} metrics match '{pattern}': showing the first {limit}; narrow the filter"
            matched = matched[:limit]
        keys.extend(matched)
    return keys, note


def diff_rows(runs: Sequence[Any], groups: Sequence[RunGroup]) -> list[dict[str, Any]]:
    """The config diff table: one row per selected run with its page link, status and progress, its line in
    the charts, and only the config fields whose values differ between the selected runs."""
    varying = differing_fields([run.config for run in runs], IDENTITY_FIELDS - {"seed"})
    line_of = {run_id: group.legend for group in groups for run_id in group.run_ids}
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run": f"/run?id={run.id}",
            "name": run.name,
            "status": run.status,
            "step": f"{run.step}/{run.total_steps}",
            "line": line_of.get(run.id, ""),
        }
        for name in varying:
            value = run.config.get(name)
            row[name] = value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)
        rows.append(row)
    return rows


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
