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
ACRONYMS = {
    "kl": "KL",
    "ce": "CE",
    "lr": "LR",
    "sft": "SFT",
    "grpo": "GRPO",
    "opd": "OPD",
    "ema": "EMA",
    "fps": "FPS",
    "kl_exact": "exact KL",
}
WORDS = {
    "reverse_kl": "Reverse KL",
    "forward_kl": "Forward KL",
    "reverse_kl_exact": "Exact reverse KL",
    "hard_ce": "Hard CE",
    "seen_success": "Seen-task success",
    "unseen_success": "Unseen-task success",
    "env_steps": "Environment steps",
    "wall_seconds": "Wall time (s)",
    "grad_norm": "Gradient norm",
    "droll": "roll",
    "dpitch": "pitch",
    "dyaw": "yaw",
}
ACTION_DIMS = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
"""The action dimensions the `train/<family>/<dim>` metrics are logged for."""


def _words(part: str) -> str:
    if part in WORDS:
        return WORDS[part]
    return " ".join(ACRONYMS.get(word, word) for word in part.split("_"))


def metric_title(key: str) -> str:
    """'train/reverse_kl' -> 'Reverse KL (train)', 'train/entropy/dx' -> 'Entropy · dx (train)',
    'eval/success/object/a' -> 'Success · object/a (eval)': a chart title a person reads; the key stays in the
    subtitle and hover."""
    parts = key.split("/")
    if len(parts) == 1:
        return _capital(_words(parts[0]))
    namespace, name, rest = parts[0], parts[1], parts[2:]
    title = _capital(_words(name)) + (" · " + "/".join(rest) if rest else "")
    return f"{title} ({namespace})"


def axis_title(key: str) -> str:
    """The y-axis label: the metric's own name, without its namespace."""
    parts = key.split("/")
    return _capital(_words(parts[1] if len(parts) > 1 else parts[0]))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Line:
    """One legend entry of a curves chart: a group's band, its unsmoothed mean drawn faintly behind (`raw`,
    when smoothing is on), and the hover text that names its runs and differing settings."""

    label: str
    band: Band
    raw: Band | None = None
    hover: str = ""


def _f32(*arrays: np.ndarray) -> list[np.ndarray]:
    """Single precision for the browser: half the bytes to send and decode, and 7 digits are more than a chart
    shows (steps stay exact up to 16 million)."""
    return [np.asarray(array, dtype=np.float32) for array in arrays]


def _as_line(item: Line | tuple[str, Band]) -> Line:
    return item if isinstance(item, Line) else Line(item[0], item[1])


def legend_rows(labels: Sequence[str], width_px: int = 440) -> int:
    """How many rows a horizontal legend of these entries takes in a chart about `width_px` wide (7 px a
    character plus the swatch), so the chart grows by that much instead of squashing its plot."""
    rows, used = 1, 0
    for label in labels:
        entry = 40 + 7 * len(label)
        if used and used + entry > width_px:
            rows, used = rows + 1, 0
        used += entry
    return rows


def _hover_text(text: str) -> str:
    return text.replace("%{", "%%{")


def curves_figure(
    key: str,
    bands: Sequence[Line | tuple[str, Band]],
    x_title: str,
    references: Sequence[Reference] = (),
    height: int = 300,
    spread: str = "minmax",
    legend_title: str = "",
) -> go.Figure:
    """`bands`: the lines in legend order, a band around each that has several seeds (`spread`: "minmax",
    "sem" or "none"). The title is the metric made human (the raw key as subtitle), the legend sits below the
    x-axis title and the chart grows by its rows: `height` is the plot area's own height."""
    lines = [_as_line(item) for item in bands]
    figure = go.Figure()
    for index, line in enumerate(lines):
        color = color_of(index)
        band = line.band
        edges = band.spread(spread) if (band.count > 1).any() else None
        if edges is not None:  # one closed polygon per band: a single trace instead of two
            low, high = edges
            polygon_x, polygon_y = _f32(np.concatenate([band.x, band.x[::-1]]), np.concatenate([high, low[::-1]]))
            figure.add_trace(
                go.Scatter(
                    x=polygon_x,
                    y=polygon_y,
                    mode="lines",
                    line={"width": 0},
                    fill="toself",
                    fillcolor=translucent(color),
                    legendgroup=line.label,
                    showlegend=False,
                    hoverinfo="skip",
                    name=line.label,
                )
            )
        if line.raw is not None:
            raw_x, raw_y = _f32(line.raw.x, line.raw.mean)
            figure.add_trace(
                go.Scatter(
                    x=raw_x,
                    y=raw_y,
                    mode="lines",
                    line={"color": color, "width": 1},
                    opacity=0.25,
                    legendgroup=line.label,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{line.label} (raw)",
                )
            )
        extra = f"<br>{_hover_text(line.hover)}" if line.hover else ""
        mean_x, mean_y = _f32(band.x, band.mean)
        figure.add_trace(
            go.Scatter(
                x=mean_x,
                y=mean_y,
                mode="lines",
                name=shorten_label(line.label),
                legendgroup=line.label,
                line={"color": color, "width": 2},
                showlegend=True,
                # an array (plotly copies lists element-wise), int32: half the bytes of int64
                customdata=np.column_stack([band.steps, band.count]).astype(np.int32),
                hovertemplate="step %{customdata[0]}: <b>%{y:.4g}</b> (mean of %{customdata[1]})"
                + extra
                + "<extra>"
                + _hover_text(shorten_label(line.label))
                + "</extra>",
            )
        )
    for reference in references:
        figure.add_hline(
            y=reference.value,
            line={"dash": "dash", "color": "#444", "width": 1.5},
            annotation_text=f"{reference.label}: {reference.value:.2f}",
            annotation_position="top left",
        )
    rows = legend_rows([shorten_label(line.label) for line in lines]) + (1 if legend_title else 0)
    bottom = 58 + 21 * rows
    figure.update_layout(
        title={"text": metric_title(key), "subtitle": {"text": key}, "x": 0.01, "xanchor": "left"},
        height=height + 70 + bottom,
        margin={"l": 60, "r": 16, "t": 70, "b": bottom},
        hovermode="closest",
        legend=_legend_below(height, 56, legend_title),
        showlegend=bool(lines),
    )
    figure.update_xaxes(title_text=x_title, title_standoff=6, automargin=False)
    figure.update_yaxes(title_text=axis_title(key), automargin=True)
    if is_success_key(key):
        figure.update_yaxes(range=SUCCESS_RANGE)
    return figure


def _legend_below(plot_height: int, gap: int, title: str) -> dict:
    """A horizontal legend `gap` px under the plot area, where it covers no curve (y is in plot-height units)."""
    return {
        "orientation": "h",
        "x": 0,
        "xanchor": "left",
        "y": -gap / plot_height,
        "yanchor": "top",
        "title": {"text": title, "side": "top"} if title else None,
    }


def shorten_label(label: str, limit: int = 48) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def dims_figure(
    family: str,
    panels: Mapping[str, Sequence[Line]],
    x_title: str,
    columns: int = 4,
    spread: str = "minmax",
    legend_title: str = "",
) -> go.Figure:
    """Small multiples for per-action-dimension metrics (`train/<family>/<dim>`): one panel per dimension, the
    same line colours in every panel and one legend for all."""
    dims = list(panels)
    columns = max(1, min(columns, len(dims) or 1))
    rows = max(1, math.ceil(len(dims) / columns))
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=dims or [""],
        horizontal_spacing=0.05,
        vertical_spacing=0.14 if rows > 1 else 0.1,
        shared_xaxes=False,
    )
    labels: list[str] = list(dict.fromkeys(line.label for lines in panels.values() for line in lines))
    for panel, dim in enumerate(dims):
        row, col = panel // columns + 1, panel % columns + 1
        for line in panels[dim]:
            color = color_of(labels.index(line.label))
            band = line.band
            edges = band.spread(spread) if (band.count > 1).any() else None
            if edges is not None:
                figure.add_trace(
                    go.Scatter(
                        x=np.concatenate([band.x, band.x[::-1]]),
                        y=np.concatenate([edges[1], edges[0][::-1]]),
                        mode="lines",
                        line={"width": 0},
                        fill="toself",
                        fillcolor=translucent(color),
                        legendgroup=line.label,
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=row,
                    col=col,
                )
            figure.add_trace(
                go.Scatter(
                    x=band.x,
                    y=band.mean,
                    mode="lines",
                    name=shorten_label(line.label),
                    legendgroup=line.label,
                    showlegend=panel == 0,
                    line={"color": color, "width": 1.6},
                    customdata=band.steps,
                    hovertemplate=f"{dim}: "
                    + "<b>%{y:.4g}</b> at step %{customdata}<extra>"
                    + _hover_text(shorten_label(line.label))
                    + "</extra>",
                ),
                row=row,
                col=col,
            )
    legend = legend_rows([shorten_label(label) for label in labels], 700) + (1 if legend_title else 0)
    bottom = 70 + 21 * legend
    plot_height = 210 * rows + 50 * (rows - 1)
    figure.update_layout(
        title={
            "text": f"{metric_title('train/' + family)} per action dimension",
            "subtitle": {"text": f"train/{family}/<dim>"},
            "x": 0.01,
            "xanchor": "left",
        },
        height=plot_height + 100 + bottom,
        margin={"l": 60, "r": 16, "t": 100, "b": bottom},
        hovermode="closest",
        legend=_legend_below(plot_height, 62, legend_title),
    )
    figure.update_xaxes(title_text=x_title, title_standoff=4, row=rows)
    figure.update_yaxes(title_text=axis_title("train/" + family), col=1)
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
