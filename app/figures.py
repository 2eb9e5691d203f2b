"""Plotly figures of the dashboard, built from plain data so that tests can inspect every trace.

- `curves_figure`: one metric over training, a mean line and min-max band per group of seeds, with the
  teacher's success as a dashed reference line (paper Figs. 2, 4, 5).
- `forgetting_figure`: seen-task vs unseen-task success, one panel per unseen task, one point per checkpoint and
  a line per run in checkpoint order (paper Fig. 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative
from plotly.subplots import make_subplots

from app.series import Band

PALETTE = qualitative.D3
SUCCESS_RANGE = [-0.03, 1.03]
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
"""Passed to st.plotly_chart: the chart's camera button downloads a PNG of exactly what is on screen."""


@dataclass(frozen=True)
class Reference:
    """A horizontal reference line, e.g. the teacher's success on the runs' seen tasks."""

    label: str
    value: float


@dataclass(frozen=True)
class ForgettingPoint:
    run_id: int
    step: int
    seen: float
    task: str
    unseen: float


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def translucent(color: str, alpha: float = 0.18) -> str:
    red, green, blue = hex_to_rgb(color)
    return f"rgba({red},{green},{blue},{alpha})"


def is_success_key(key: str) -> bool:
    return "success" in key.rsplit("/", 1)[-1] or key.startswith("eval/success/")


# ============================================================================================ curves
def curves_figure(
    key: str, bands: Sequence[tuple[str, Band]], x_title: str, references: Sequence[Reference] = (), height: int = 360
) -> go.Figure:
    """`bands`: (group label, folded curve) in legend order; a group with one seed draws no band."""
    figure = go.Figure()
    for index, (label, band) in enumerate(bands):
        color = color_of(index)
        if (band.count > 1).any():
            figure.add_trace(
                go.Scatter(
                    x=band.x,
                    y=band.high,
                    mode="lines",
                    line={"width": 0},
                    legendgroup=label,
                    showlegend=False,
                    hoverinfo="skip",
                    name=label,
                )
            )
            figure.add_trace(
                go.Scatter(
                    x=band.x,
                    y=band.low,
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=translucent(color),
                    legendgroup=label,
                    showlegend=False,
                    hoverinfo="skip",
                    name=label,
                )
            )
        figure.add_trace(
            go.Scatter(
                x=band.x,
                y=band.mean,
                mode="lines",
                name=label,
                legendgroup=label,
                line={"color": color, "width": 2},
                customdata=np.column_stack([band.steps, band.count]),  # an array: plotly copies lists element-wise
                hovertemplate="%{y:.3f} (step %{customdata[0]}, %{customdata[1]} seeds)<extra>" + label + "</extra>",
            )
        )
    for reference in references:
        figure.add_hline(
            y=reference.value,
            line={"dash": "dash", "color": "#444", "width": 1.5},
            annotation_text=f"{reference.label}: {reference.value:.2f}",
            annotation_position="top left",
        )
    figure.update_layout(
        title=key,
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        hovermode="closest",
    )
    figure.update_xaxes(title_text=x_title)
    if is_success_key(key):
        figure.update_yaxes(range=SUCCESS_RANGE)
    return figure


# ============================================================================================ forgetting
def forgetting_points(
    checkpoints_by_run: Mapping[int, Sequence[Any]], unseen_tasks: Sequence[str]
) -> list[ForgettingPoint]:
    """(seen, unseen) success of every checkpoint that evaluated both, per unseen task, in step order.

    Checkpoints are anything with `step` and `summary` = {seen_success, unseen_success, per_task}; a checkpoint
    without the task in its per-task results (not evaluated on it) or with a non-finite value is skipped."""
    points = []
    for run_id, checkpoints in checkpoints_by_run.items():
        for checkpoint in sorted(checkpoints, key=lambda c: c.step):
            summary = checkpoint.summary or {}
            seen, per_task = summary.get("seen_success"), summary.get("per_task") or {}
            if not _finite(seen):
                continue
            for task in unseen_tasks:
                if _finite(per_task.get(task)):
                    points.append(ForgettingPoint(run_id, checkpoint.step, float(seen), task, float(per_task[task])))
    return points


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def forgetting_figure(
    points: Sequence[ForgettingPoint],
    tasks: Sequence[str],
    run_labels: Mapping[int, str],
    run_names: Mapping[int, str] | None = None,
    columns: int = 4,
) -> go.Figure:
    """One panel per unseen task; runs with the same label (seeds of one method) share a colour and a legend
    entry. The first checkpoint is an open circle and later ones are arrows pointing along the run's path."""
    columns = max(1, min(columns, len(tasks) or 1))
    rows = max(1, math.ceil(len(tasks) / columns))
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_task_title(t) for t in tasks] or [""],
        horizontal_spacing=0.06,
        vertical_spacing=0.16,
    )
    colors = {label: color_of(i) for i, label in enumerate(dict.fromkeys(run_labels.values()))}
    in_legend: set[str] = set()
    for panel, task in enumerate(tasks):
        row, col = panel // columns + 1, panel % columns + 1
        for run_id, label in run_labels.items():
            run_points = [p for p in points if p.run_id == run_id and p.task == task]
            if not run_points:
                continue
            name = (run_names or {}).get(run_id, f"run {run_id}")
            figure.add_trace(
                go.Scatter(
                    x=[p.seen for p in run_points],
                    y=[p.unseen for p in run_points],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=label not in in_legend,
                    line={"color": colors[label], "width": 1.5},
                    marker={
                        "size": 9,
                        "symbol": ["circle-open"] + ["arrow"] * (len(run_points) - 1),
                        "angleref": "previous",
                        "color": colors[label],
                    },
                    customdata=[[p.step, name] for p in run_points],
                    hovertemplate="seen %{x:.2f}, unseen %{y:.2f}<br>step %{customdata[0]} of %{customdata[1]}"
                    "<extra>" + label + "</extra>",
                ),
                row=row,
                col=col,
            )
            in_legend.add(label)
    figure.update_xaxes(range=SUCCESS_RANGE, title_text="seen-task success")
    figure.update_yaxes(range=SUCCESS_RANGE)
    figure.update_yaxes(title_text="unseen-task success", col=1)
    figure.update_layout(
        height=330 * rows + 60, margin={"l": 50, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.15}
    )
    return figure


def _task_title(task: str) -> str:
    """'unseen/put_red_block_behind_tray' -> 'put red block behind tray' (a panel title, not an identifier)."""
    return task.rsplit("/", 1)[-1].replace("_", " ")
