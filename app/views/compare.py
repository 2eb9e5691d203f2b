"""Compare (live): curves of the selected runs, redrawn by a fragment every few seconds while any of them runs.

The selection, metrics, x-axis and smoothing live in the URL (?runs=3&runs=5&keys=train/success&x=step&smooth=0.6)
so that a view can be shared; the controls stay put while only the charts refresh.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.backend import api
from app.compare import DEFAULT_KEYS, build_view, default_keys, runs_csv, teacher_references
from app.figures import PLOTLY_CONFIG
from app.live_series import SeriesCache
from app.runs_table import any_active
from app.series import X_AXES
from app.views.common import guarded, ids_from_query, init_from_query, labeller, query_writer

REFRESH_CHOICES = (2, 5, 10, 30)


@guarded
def render() -> None:
    st.title("Compare")
    lab = api()
    all_runs = lab.list_runs()
    if not all_runs:
        st.info("No runs in the store yet: launch some first.")
        return
    run_ids = _run_picker(all_runs)
    if not run_ids:
        st.info("Pick runs above, or tick them on the Runs page and press Compare.")
        return
    keys, axis, smoothing, live, refresh = _controls(run_ids)
    runs = [run for run in all_runs if run.id in run_ids]
    references = teacher_references(lab, runs, all_runs)
    interval = refresh if live and any_active(runs) else None
    st.fragment(run_every=interval)(guarded(_charts))(run_ids, keys, axis, smoothing, references)


def _run_picker(all_runs: list[Any]) -> list[int]:
    known = [run.id for run in all_runs]
    if "compare_runs" not in st.session_state:
        st.session_state["compare_runs"] = ids_from_query("runs", known)
    st.session_state["compare_runs"] = [i for i in st.session_state["compare_runs"] if i in known]
    sweeps = {sweep.id: sweep for sweep in api().list_sweeps()}
    left, right = st.columns([3, 1])
    selected = left.multiselect(
        "Runs",
        known,
        key="compare_runs",
        format_func=labeller(all_runs),
        on_change=query_writer("compare_runs", "runs"),
    )
    right.selectbox(
        "Add a sweep's runs",
        [None, *sweeps],
        key="compare_add_sweep",
        on_change=_add_sweep,
        args=(sweeps, known),
        format_func=lambda s: "—" if s is None else f"#{s} {sweeps[s].name}",
    )
    return selected


def _add_sweep(sweeps: dict[int, Any], known: list[int]) -> None:
    sweep_id = st.session_state.get("compare_add_sweep")
    if sweep_id is None:
        return
    current = st.session_state.get("compare_runs", [])
    st.session_state["compare_runs"] = list(
        dict.fromkeys([*current, *[i for i in sweeps[sweep_id].run_ids if i in known]])
    )
    st.session_state["compare_add_sweep"] = None
    query_writer("compare_runs", "runs")()


def _controls(run_ids: list[int]) -> tuple[list[str], str, float, bool, int]:
    # the default metrics are offered before a queued run has logged them, so its charts fill in live
    available = list(dict.fromkeys([*DEFAULT_KEYS, *api().metric_keys(run_ids)]))
    init_from_query("compare_keys", default_keys(available), list, "keys")
    st.session_state["compare_keys"] = [k for k in st.session_state["compare_keys"] if k in available] or default_keys(
        available
    )
    init_from_query("compare_x", "step", lambda v: v[0] if v[0] in X_AXES else "step", "x")
    init_from_query("compare_smooth", 0.0, lambda v: min(0.99, max(0.0, float(v[0]))), "smooth")
    keys = st.multiselect("Metrics", available, key="compare_keys", on_change=query_writer("compare_keys", "keys"))
    axis_column, smooth_column, live_column, refresh_column = st.columns([2, 2, 1, 1])
    axis = axis_column.radio(
        "x-axis",
        list(X_AXES),
        key="compare_x",
        format_func=X_AXES.get,
        horizontal=True,
        on_change=query_writer("compare_x", "x"),
    )
    smoothing = smooth_column.slider(
        "EMA smoothing",
        0.0,
        0.99,
        step=0.01,
        key="compare_smooth",
        on_change=query_writer("compare_smooth", "smooth"),
        help="Weight of the running average (TensorBoard-style, debiased)",
    )
    live = live_column.toggle(
        "Live",
        value=True,
        key="compare_live",
        help="Redraw the charts every few seconds while a selected run is active",
    )
    refresh = refresh_column.selectbox("every (s)", REFRESH_CHOICES, index=0, key="compare_refresh")
    return keys, axis, smoothing, live, refresh


def _charts(run_ids: list[int], keys: list[str], axis: str, smoothing: float, references: list) -> None:
    lab = api()
    runs = [run for run in (lab.get_run(run_id) for run_id in run_ids) if run is not None]
    if not keys:
        st.info("Pick at least one metric.")
        return
    cache = st.session_state.setdefault("compare_series_cache", SeriesCache())
    view = build_view(lab, runs, keys, axis, smoothing, references, cache=cache)
    active = [run for run in runs if run.status in ("queued", "running")]
    st.caption(
        " · ".join(f"#{run.id} {run.status} {run.step}/{run.total_steps}" for run in active)
        if active
        else "No selected run is active: the charts are final."
    )
    columns = st.columns(2)
    for index, (key, figure) in enumerate(view.figures):
        with columns[index % 2]:
            st.plotly_chart(
                figure,
                config={
                    **PLOTLY_CONFIG,
                    "toImageButtonOptions": {
                        **PLOTLY_CONFIG["toImageButtonOptions"],
                        "filename": key.replace("/", "_"),
                    },
                },
                key=f"chart_{key}",
            )
    st.download_button(
        "Download the plotted metrics (CSV)",
        lambda: runs_csv(runs, view.data, keys),
        file_name="opd-compare.csv",
        mime="text/csv",
        key="compare_csv",
        help="Raw values of every selected run and metric; for a PNG use the camera icon of a chart",
    )
