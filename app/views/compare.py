"""Compare (live): curves of the selected runs, redrawn by a fragment every few seconds while any of them runs.

Everything that makes a view lives in the URL so that it can be shared (?runs=3&runs=5&keys=train/success
&x=step&smooth=0.6&group=objective&band=sem&filter=kl&dims=reverse_kl&live=1). Runs are identified by id in
widgets, session state and the URL; their labels hold only the id and name (see common.labeller), statuses are
shown in the config diff table, which the fragment redraws with the charts. The metric picker and filter sit in
the fragment too, so metrics a run starts logging appear without a rerun of the page.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import exports
from app.backend import api
from app.charts import show_figure
from app.compare import (
    DEFAULT_KEYS,
    DIM_FAMILIES,
    build_view,
    chart_keys,
    default_keys,
    diff_rows,
    runs_csv,
    teacher_references,
    view_signature,
)
from app.html_table import html_table
from app.live_series import shared_cache
from app.run_groups import GROUP_NONE, GROUP_SETTINGS, grouping_fields
from app.runs_table import any_active
from app.series import SPREADS, X_AXES
from app.views.common import guarded, ids_from_query, init_from_query, labeller

REFRESH_CHOICES = (2, 5, 10, 30)
AXIS_CHOICES = {"step": "step", "env_steps": "env steps", "wall_time": "wall time"}
"""The x-axis radio's short labels (the charts' axis titles say it in full): one line at 1024 px."""
URL_STATE = {
    "runs": "compare_runs",
    "keys": "compare_keys",
    "x": "compare_x",
    "smooth": "compare_smooth",
    "group": "compare_group",
    "band": "compare_band",
    "filter": "compare_filter",
    "dims": "compare_dims",
    "live": "compare_live",
}
"""Query parameter -> the session-state key of the control it restores."""
DIMS_OFF = "off"


def sync_url() -> None:
    """on_change of every control: the whole view into the URL (ids, keys and codes, never labels)."""
    for param, state_key in URL_STATE.items():
        if state_key not in st.session_state:
            continue
        value = st.session_state[state_key]
        if isinstance(value, bool):
            value = int(value)
        st.query_params[param] = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)


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
    runs = [run for run in all_runs if run.id in run_ids]
    axis, smoothing, group_by, spread, dims, live, refresh = _controls(runs)
    references = teacher_references(lab, runs, all_runs)
    interval = refresh if live and any_active(runs) else None
    st.fragment(run_every=interval)(guarded(_live_part))(run_ids, axis, smoothing, group_by, spread, dims, references)


def _run_picker(all_runs: list[Any]) -> list[int]:
    known = [run.id for run in all_runs]
    if "compare_runs" not in st.session_state:
        st.session_state["compare_runs"] = ids_from_query("runs", known)
    st.session_state["compare_runs"] = [i for i in st.session_state["compare_runs"] if i in known]
    sweeps = {sweep.id: sweep for sweep in api().list_sweeps()}
    selected = st.multiselect(
        "Runs", known, key="compare_runs", format_func=labeller(all_runs, limit=28), on_change=sync_url, wrap=True
    )
    st.columns([1, 2])[0].selectbox(
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
    sync_url()


def _group_name(option: str) -> str:
    return {GROUP_SETTINGS: "seeds folded", GROUP_NONE: "none (per run)"}.get(option, option)


def _controls(runs: list[Any]) -> tuple[str, float, str, str, str, bool, int]:
    init_from_query("compare_x", "step", lambda v: v[0] if v[0] in X_AXES else "step", "x")
    init_from_query("compare_smooth", 0.0, lambda v: min(0.99, max(0.0, float(v[0]))), "smooth")
    init_from_query("compare_group", GROUP_SETTINGS, lambda v: v[0], "group")
    init_from_query("compare_band", "minmax", lambda v: v[0] if v[0] in SPREADS else "minmax", "band")
    init_from_query("compare_dims", DIMS_OFF, lambda v: v[0] if v[0] in DIM_FAMILIES else DIMS_OFF, "dims")
    init_from_query("compare_live", True, lambda v: v[0] not in ("0", "false"), "live")
    fields = [GROUP_SETTINGS, GROUP_NONE, *grouping_fields(runs)]
    chosen = st.session_state["compare_group"]
    if chosen not in fields:  # a field from the URL that these runs share still groups them (into one line)
        if any(chosen in run.config for run in runs):
            fields.append(chosen)
        else:
            st.session_state["compare_group"] = GROUP_SETTINGS
    axis_column, smooth_column = st.columns([5, 3])
    axis = axis_column.radio(
        "x-axis",
        list(X_AXES),
        key="compare_x",
        format_func=AXIS_CHOICES.get,
        horizontal=True,
        on_change=sync_url,
        help="Training step, environment steps or wall-clock seconds since the run started",
    )
    smoothing = smooth_column.slider(
        "EMA smoothing",
        0.0,
        0.99,
        step=0.01,
        key="compare_smooth",
        on_change=sync_url,
        help="Weight of the running average (TensorBoard-style, debiased); the raw "
        "curve stays faintly behind the smoothed one",
    )
    group_column, band_column, dims_column, live_column = st.columns(4)
    group_by = group_column.selectbox(
        "Group by",
        fields,
        key="compare_group",
        format_func=_group_name,
        on_change=sync_url,
        help="Runs with the same value of this config field share a line: their mean, and a band over them",
    )
    spread = band_column.selectbox(
        "Band",
        list(SPREADS),
        key="compare_band",
        format_func=SPREADS.get,
        on_change=sync_url,
        help="The spread drawn around a group's mean",
    )
    dims = dims_column.selectbox(
        "Per dimension",
        [DIMS_OFF, *DIM_FAMILIES],
        key="compare_dims",
        format_func=lambda f: "off" if f == DIMS_OFF else DIM_FAMILIES[f],
        on_change=sync_url,
        help="Entropy or KL per action dimension over training (train/<family>/<dim>): one panel per dimension",
    )
    live = live_column.toggle(
        "Live",
        key="compare_live",
        on_change=sync_url,
        help="Redraw the charts while a selected run is active, as often as chosen below",
    )
    refresh = live_column.selectbox(
        "Refresh period",
        REFRESH_CHOICES,
        index=0,
        key="compare_refresh",
        format_func=lambda seconds: f"every {seconds} s",
        label_visibility="collapsed",
    )
    return axis, smoothing, group_by, spread, dims, live, refresh


def _metric_picker(run_ids: list[int]) -> tuple[list[str], str | None]:
    # the default metrics are offered before a queued run has logged them, so its charts fill in live
    available = list(dict.fromkeys([*DEFAULT_KEYS, *api().metric_keys(run_ids)]))
    init_from_query("compare_keys", default_keys(available), list, "keys")
    init_from_query("compare_filter", "", lambda v: v[0], "filter")
    pinned = [k for k in st.session_state["compare_keys"] if k in available]
    if pinned != st.session_state["compare_keys"]:
        st.session_state["compare_keys"] = pinned
    keys_column, filter_column = st.columns([3, 1])
    keys = keys_column.multiselect("Metrics", available, key="compare_keys", on_change=sync_url, wrap=True)
    pattern = filter_column.text_input(
        "Filter metrics",
        key="compare_filter",
        on_change=sync_url,
        placeholder="regex, e.g. kl|entropy",
        help="Also chart every metric whose key matches this regular expression "
        "(case-insensitive), including keys that appear while the runs go on",
    )
    return chart_keys(available, keys, pattern)


def _live_part(
    run_ids: list[int], axis: str, smoothing: float, group_by: str, spread: str, dims: str, references: list
) -> None:
    lab = api()
    keys, note = _metric_picker(run_ids)
    if note:
        st.caption(note)
    fresh = {run.id: run for run in lab.list_runs()}
    runs = [fresh[run_id] for run_id in run_ids if run_id in fresh]
    if not keys and dims == DIMS_OFF:
        st.info("Pick at least one metric.")
        return
    signature = view_signature(runs, keys, axis, smoothing, group_by, spread, dims, references)
    last = st.session_state.get("compare_last_view")
    if last is not None and last[0] == signature:
        view = last[1]
    else:
        view = build_view(
            lab,
            runs,
            keys,
            axis,
            smoothing,
            references,
            cache=shared_cache(lab),
            group_by=group_by,
            spread=spread,
            dims_family=None if dims == DIMS_OFF else dims,
        )
        st.session_state["compare_last_view"] = (signature, view)
    active = [run for run in runs if run.status in ("queued", "running")]
    st.caption(
        " · ".join(f"#{run.id} {run.status} {run.step}/{run.total_steps}" for run in active)
        if active
        else "No selected run is active: the charts are final."
    )
    st.html(html_table(diff_rows(runs, view.groups), links={"run": r"id=(\d+)"}))
    columns = st.columns(2)
    for index, (key, figure) in enumerate(view.figures):
        with columns[index % 2]:
            show_figure(figure, key=f"chart_{key}", filename=key)
            exports.download_buttons(figure, f"compare-{key.replace('/', '-')}", key=f"compare_export_{key}")
    if view.dims_figure is not None:
        show_figure(view.dims_figure, key=f"chart_dims_{dims}", filename=f"dims_{dims}")
        exports.download_buttons(view.dims_figure, f"compare-{dims}-per-dimension", key=f"compare_export_dims_{dims}")
    elif dims != DIMS_OFF:
        st.caption(f"No selected run has logged train/{dims}/<dim> yet.")
    st.download_button(
        "Download the plotted metrics (CSV)",
        lambda: runs_csv(runs, view.data, keys),
        file_name="opd-compare.csv",
        mime="text/csv",
        key="compare_csv",
        help="Raw values of every selected run and metric; for a PNG use the camera icon of a chart",
    )
