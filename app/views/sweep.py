"""Sweep: the final (or best) value of one metric against a swept config field, for a sweep or any set of runs.

A scatter (x = the field's values, one point per run, i.e. per seed, the mean of each value marked) and parallel
coordinates over every field that varies between the runs, with the metric as the last axis.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import exports
from app.backend import api
from app.charts import show_figure
from app.figures import SUCCESS_RANGE, color_of, is_success_key
from app.run_groups import IDENTITY_FIELDS
from app.views.common import guarded, ids_from_query, labeller, query_writer
from app.views.run import page_url

AGGREGATES = {"final": "final value", "max": "best (highest)", "min": "best (lowest)"}
PREFERRED_KEYS = ("eval/seen_success", "eval/unseen_success", "train/success")
NOT_SWEPT = IDENTITY_FIELDS - {"seed"}
"""Fields that differ between any runs (names, folders) and say nothing about the experiment."""


@dataclass(frozen=True)
class SweepPoint:
    run_id: int
    name: str
    fields: dict[str, Any]
    """The run's value of every varying field."""
    value: float


def varying_fields(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config fields whose values differ between the runs (seed included, names and folders not), in config order."""
    names = list(dict.fromkeys(name for config in configs for name in config))
    return [
        name for name in names if name not in NOT_SWEPT and len({_hashable(config.get(name)) for config in configs}) > 1
    ]


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def reduce_series(values: np.ndarray, how: str) -> float | None:
    """The final, highest or lowest finite value of a series (None when it has none)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    if how == "final":
        return float(finite[-1])
    if how == "max":
        return float(finite.max())
    if how == "min":
        return float(finite.min())
    raise ValueError(f"unknown aggregate {how!r}: use one of {', '.join(AGGREGATES)}")


def sweep_points(
    runs: Sequence[Any], series: Mapping[int, Mapping[str, Any]], key: str, how: str, fields: Sequence[str]
) -> list[SweepPoint]:
    """One point per run that logged `key`, in the runs' order."""
    points = []
    for run in runs:
        found = series.get(run.id, {}).get(key)
        value = None if found is None else reduce_series(np.asarray(found.values, dtype=float), how)
        if value is not None:
            points.append(SweepPoint(run.id, run.name, {f: run.config.get(f) for f in fields}, value))
    return points


def _ordered_values(values: Sequence[Any]) -> list[Any]:
    """Distinct values, numbers ascending, everything else in first-seen order."""
    distinct = list(dict.fromkeys(_label(v) for v in values))
    try:
        return sorted(distinct, key=float)
    except (TypeError, ValueError):
        return distinct


def _label(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return "(none)" if value in ("", None) else str(value)


def axis_title(key: str, how: str) -> str:
    return f"{key} ({AGGREGATES[how]})"


def scatter_figure(points: Sequence[SweepPoint], field: str, key: str, how: str) -> go.Figure:
    """x = the field's values (as categories, in numeric order where they are numbers), one marker per run and a
    mean marker per value; runs of one seed share a colour so that a seed's path across the sweep shows."""
    order = _ordered_values([p.fields.get(field) for p in points])
    figure = go.Figure()
    seeds = list(dict.fromkeys(p.fields.get("seed") for p in points))
    offsets = {seed: (i - (len(seeds) - 1) / 2) * 0.06 for i, seed in enumerate(seeds)}
    for index, seed in enumerate(seeds):
        members = [p for p in points if p.fields.get("seed") == seed]
        figure.add_trace(
            go.Scatter(
                x=[order.index(_label(p.fields.get(field))) + offsets[seed] for p in members],
                y=[p.value for p in members],
                mode="markers",
                name=f"seed {seed}" if seed is not None else "runs",
                legendgroup="runs",
                marker={"size": 9, "color": color_of(index), "opacity": 0.8},
                customdata=[[p.run_id, p.name, _label(p.fields.get(field))] for p in members],
                hovertemplate=f"{field}=%{{customdata[2]}}: %{{y:.3f}}<br>#%{{customdata[0]}} %{{customdata[1]}}"
                "<extra></extra>",
            )
        )
    means = [float(np.mean([p.value for p in points if _label(p.fields.get(field)) == value])) for value in order]
    counts = [sum(_label(p.fields.get(field)) == value for p in points) for value in order]
    figure.add_trace(
        go.Scatter(
            x=list(range(len(order))),
            y=means,
            mode="lines+markers",
            name="mean",
            line={"color": "#222", "width": 1.5, "dash": "dot"},
            marker={"symbol": "line-ew-open", "size": 26, "line": {"width": 3, "color": "#222"}},
            customdata=list(zip(order, counts)),
            hovertemplate=f"{field}=%{{customdata[0]}}: mean %{{y:.3f}} of %{{customdata[1]}} runs<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": f"{key} against {field}", "x": 0},
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
        hovermode="closest",
    )
    figure.update_xaxes(
        title_text=field,
        tickmode="array",
        tickvals=list(range(len(order))),
        ticktext=order,
        range=[-0.5, len(order) - 0.5],
    )
    figure.update_yaxes(title_text=axis_title(key, how), **({"range": SUCCESS_RANGE} if is_success_key(key) else {}))
    return figure


def parallel_figure(points: Sequence[SweepPoint], fields: Sequence[str], key: str, how: str) -> go.Figure:
    """One axis per varying field (numbers on a numeric axis, anything else as labelled ticks) and the metric as
    the last axis, which also colours the lines."""
    dimensions = []
    for field in fields:
        raw = [p.fields.get(field) for p in points]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw):
            distinct = sorted(set(raw))
            ticks = {"tickvals": distinct, "ticktext": [_label(v) for v in distinct]} if len(distinct) <= 8 else {}
            dimensions.append({"label": field, "values": [float(v) for v in raw], **ticks})
        else:
            order = _ordered_values(raw)
            dimensions.append(
                {
                    "label": field,
                    "values": [order.index(_label(v)) for v in raw],
                    "tickvals": list(range(len(order))),
                    "ticktext": order,
                }
            )
    values = [p.value for p in points]
    dimensions.append({"label": key, "values": values, **({"range": [0.0, 1.0]} if is_success_key(key) else {})})
    # the metric's own axis reads the colour: no colour bar to crowd the last axis
    figure = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={"color": values, "colorscale": "Viridis"},
            labelfont={"size": 13},
            tickfont={"size": 11},
        )
    )
    figure.update_layout(
        title={"text": f"{axis_title(key, how)} over the varying fields", "x": 0},
        height=420,
        margin={"l": 60, "r": 60, "t": 90, "b": 30},
    )
    return figure


# ============================================================================================ page
@guarded
def render() -> None:
    st.title("Sweep")
    st.caption(
        "The final (or best) value of a metric against a swept setting: one point per run (per seed), "
        "the mean of each value marked; parallel coordinates show every setting that varies at once."
    )
    lab = api()
    runs = [run for run in lab.list_runs() if run.status != "queued"]
    if not runs:
        st.info("No run has started yet. Launch a sweep (Launch → a preset, or several values of a field).")
        return
    known = [run.id for run in runs]
    sweeps = [sweep for sweep in lab.list_sweeps() if set(sweep.run_ids) & set(known)]
    _choose_runs(runs, known, sweeps)
    chosen = sorted((run for run in runs if run.id in st.session_state["sweep_runs"]), key=lambda run: run.id)
    if len(chosen) < 2:
        st.info("Pick two or more runs (or a sweep) to compare across a setting.")
        return
    fields = varying_fields([run.config for run in chosen])
    if not fields:
        st.info("These runs share every setting: nothing was swept between them.")
        return
    keys = lab.metric_keys([run.id for run in chosen])
    if not keys:
        st.info("These runs have logged no metrics yet.")
        return
    default_key = next((k for k in PREFERRED_KEYS if k in keys), keys[0])
    sweep = next((s for s in sweeps if s.id == st.session_state.get("sweep_id")), None)
    default_field = next((f for f in (sweep.grid if sweep else {}) if f in fields), None)
    default_field = default_field or next((f for f in fields if f != "seed"), fields[0])
    key_column, how_column, field_column = st.columns([3, 2, 2])
    key = key_column.selectbox("Metric", keys, index=keys.index(default_key), key="sweep_key")
    how = how_column.radio("Value", list(AGGREGATES), format_func=AGGREGATES.get, key="sweep_how")
    field = field_column.selectbox("Setting (x axis)", fields, index=fields.index(default_field), key="sweep_field")
    points = sweep_points(chosen, lab.metrics([run.id for run in chosen], [key]), key, how, fields)
    if not points:
        st.info(f"None of these runs has logged {key} yet.")
        return
    scatter = scatter_figure(points, field, key, how)
    show_figure(scatter, key="sweep_scatter", filename="sweep-scatter")
    exports.download_buttons(scatter, "sweep-scatter", key="sweep_scatter_export")
    if len(fields) > 1:
        parallel = parallel_figure(points, fields, key, how)
        show_figure(parallel, key="sweep_parallel", filename="sweep-parallel")
        exports.download_buttons(parallel, "sweep-parallel", key="sweep_parallel_export")
    st.dataframe(
        [
            {"run": page_url(p.run_id), "name": p.name, key: p.value, **{f: _label(p.fields[f]) for f in fields}}
            for p in points
        ],
        hide_index=True,
        key="sweep_table",
        column_config={
            "run": st.column_config.LinkColumn(
                "run", display_text=r"run\?id=(\d+)", help="The run's id: open its page", width="small"
            ),
            key: st.column_config.NumberColumn(key, format="%.3f"),
        },
    )


def _choose_runs(runs: Sequence[Any], known: list[int], sweeps: Sequence[Any]) -> None:
    """A sweep fills the runs box; the box can then be edited (any set of runs). Both live in the URL."""
    if "sweep_runs" not in st.session_state:
        from_url = ids_from_query("runs", known)
        wanted = ids_from_query("sweep", [s.id for s in sweeps])
        st.session_state["sweep_id"] = wanted[0] if wanted else (sweeps[0].id if sweeps and not from_url else None)
        by_sweep = {s.id: [i for i in s.run_ids if i in known] for s in sweeps}
        st.session_state["sweep_runs"] = from_url or by_sweep.get(st.session_state["sweep_id"], known[:8])
    names = {s.id: s.name for s in sweeps}
    if st.session_state.get("sweep_id") not in names:  # a sweep whose runs were all deleted meanwhile
        st.session_state["sweep_id"] = None
    st.session_state["sweep_runs"] = [i for i in st.session_state["sweep_runs"] if i in known]
    st.selectbox(
        "Sweep",
        [None, *names],
        key="sweep_id",
        on_change=_sweep_chosen,
        args=(sweeps, known),
        format_func=lambda i: "(pick runs below)" if i is None else f"#{i} {names[i]}",
    )
    count = len(st.session_state["sweep_runs"])
    with st.expander(f"Runs ({count} selected)", expanded=st.session_state["sweep_id"] is None):
        st.multiselect(
            "Runs", known, key="sweep_runs", format_func=labeller(runs), on_change=query_writer("sweep_runs", "runs")
        )


def _sweep_chosen(sweeps: Sequence[Any], known: list[int]) -> None:
    sweep_id = st.session_state["sweep_id"]
    if sweep_id is None:
        st.query_params.pop("sweep", None)
        return
    st.query_params["sweep"] = str(sweep_id)
    members = next((s.run_ids for s in sweeps if s.id == sweep_id), [])
    st.session_state["sweep_runs"] = [i for i in members if i in known]
    st.query_params["runs"] = [str(i) for i in st.session_state["sweep_runs"]]
