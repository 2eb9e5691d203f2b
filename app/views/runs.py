"""Runs: every run with its status and latest numbers; filter, act on a selection, open a run's page or Compare.

The table and the actions live in one fragment that refreshes itself every few seconds while any listed run
is queued or running, so progress moves without reloading the page (and without touching the filters).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import navigation
from app.backend import api
from app.runs_table import (
    COLUMN_ORDER,
    LATEST_KEYS,
    RESUMABLE_STATUSES,
    STATUSES,
    any_active,
    filter_runs,
    retry_reasons,
    run_rows,
    settings_table,
)
from app.views.common import guarded, labeller, refusal
from app.views.run import page_url

REFRESH_SECONDS = 3.0
SELECTION_KEY = "runs_selected"
TABLE_KEY = "runs_table"
PREFETCHED_KEY = "runs_prefetched"
WRAPPING_ROW = 66
"""Pixels: Streamlit's grid wraps long cells (names, status, settings) only in rows taller than 4rem."""
ROWS_IN_VIEW = 12
"""Rows the table shows before it scrolls (its automatic height assumes one-line rows)."""


@guarded
def render() -> None:
    st.title("Runs")
    runs = api().list_runs()
    st.session_state[PREFETCHED_KEY] = runs  # the fragment's first run uses this listing: one query per render
    live = any_active(runs)
    st.fragment(run_every=REFRESH_SECONDS if live else None)(guarded(_table_and_actions))()


def _filters(runs: list[Any], sweeps: dict[int, str]) -> dict[str, Any]:
    tags = sorted({tag for run in runs for tag in run.tags})
    status_column, sweep_column, tag_column = st.columns(3)
    status = status_column.selectbox("Status", [None, *STATUSES], format_func=lambda s: s or "any", key="runs_status")
    if st.session_state.get("runs_sweep") not in (None, *sweeps):
        st.session_state["runs_sweep"] = None
    sweep_id = sweep_column.selectbox(
        "Sweep", [None, *sweeps], key="runs_sweep", format_func=lambda s: "any" if s is None else f"#{s} {sweeps[s]}"
    )
    if st.session_state.get("runs_tag") not in (None, *tags):
        st.session_state["runs_tag"] = None
    tag = tag_column.selectbox("Tag", [None, *tags], format_func=lambda t: t or "any", key="runs_tag")
    return {"status": status, "sweep_id": sweep_id, "tag": tag}


def _table_and_actions() -> None:
    lab = api()
    runs = st.session_state.pop(PREFETCHED_KEY, None)
    if runs is None:  # a timed or widget rerun of the fragment alone
        runs = lab.list_runs()
    sweeps = {sweep.id: sweep.name for sweep in lab.list_sweeps()}
    filters = _filters(runs, sweeps)
    runs = filter_runs(runs, **filters)
    if message := st.session_state.pop("runs_message", None):
        st.success(message)
    if refused := st.session_state.pop("runs_refused", None):
        st.error(f"Refused: {refused}")
    if not runs:
        st.info("No runs match these filters." if any(filters.values()) else "No runs yet: launch one.")
        st.page_link(navigation.page("launch"), label="Launch a run", icon=":material/rocket_launch:")
        return
    rows = run_rows(
        runs, lab.latest_metrics([run.id for run in runs], LATEST_KEYS), sweeps, reasons=retry_reasons(lab, runs)
    )
    for row in rows:
        row["page"] = page_url(row["id"])
    ids = [row["id"] for row in rows]
    st.dataframe(
        rows,
        key=TABLE_KEY,
        on_select=lambda: _table_selected(ids),
        selection_mode="multi-row",
        hide_index=True,
        column_config=_column_config(),
        column_order=COLUMN_ORDER,
        row_height=WRAPPING_ROW,
        height=min(len(rows), ROWS_IN_VIEW) * WRAPPING_ROW + 40,
    )
    if SELECTION_KEY in st.session_state:  # drop runs that left the list (deleted, filtered out)
        st.session_state[SELECTION_KEY] = [i for i in st.session_state[SELECTION_KEY] if i in ids]
    selected = st.multiselect(
        "Selected runs (tick rows in the table, or pick here)", ids, key=SELECTION_KEY, format_func=labeller(runs)
    )
    _actions([run for run in runs if run.id in selected])


def _table_selected(ids: list[int]) -> None:
    rows = st.session_state[TABLE_KEY].selection.rows
    st.session_state[SELECTION_KEY] = [ids[i] for i in rows if i < len(ids)]


def _column_config() -> dict[str, Any]:
    number = st.column_config.NumberColumn
    return {
        "id": number("id", width="small", pinned=True),
        "page": st.column_config.LinkColumn(
            "page", display_text="open", width="small", help="The run's page: config, history, log, checkpoints, files"
        ),
        "name": st.column_config.TextColumn("name", width="medium"),
        "status": st.column_config.TextColumn("status", width="medium"),
        "progress": st.column_config.ProgressColumn(
            "progress", min_value=0.0, max_value=1.0, format="percent", width="small"
        ),
        "suite": st.column_config.TextColumn("suite", width="small"),
        "settings": st.column_config.TextColumn(
            "settings",
            width="medium",
            help="The settings that differ between the listed runs (all of them: the run's page, or select runs "
            "and open 'Settings of the selected runs')",
        ),
        "attempt": number("attempt", width="small", help="How many times the run was queued (resumes, re-queues)"),
        "train success": number("train success", format="%.2f"),
        "seen success": number("seen success", format="%.2f"),
        "unseen success": number("unseen success", format="%.2f"),
        "entropy": number("entropy", format="%.3f"),
    }


def _actions(selected: list[Any]) -> None:
    """Buttons act through on_click callbacks: the action happens before the next (fragment) run draws the
    table, so the table always shows its effect."""
    if not selected:
        st.caption("Select runs to compare, cancel, resume, delete, tag or annotate them.")
        return
    ids = [run.id for run in selected]
    if len(selected) == 1:
        st.page_link(
            navigation.page("run"),
            label=f"Open the page of #{ids[0]} {selected[0].name}",
            icon=":material/description:",
            query_params={"id": str(ids[0])},
        )
    compare, cancel, resume, delete = st.columns(4)
    compare.page_link(
        navigation.page("compare"),
        label=f"Compare {len(ids)} run(s)",
        icon=":material/monitoring:",
        query_params={"runs": [str(i) for i in ids]},
    )
    active = [run.id for run in selected if run.status in ("queued", "running")]
    cancel.button(
        f"Cancel {len(active)}",
        disabled=not active,
        key="runs_cancel",
        on_click=_apply,
        args=("cancel", active, "Cancel requested for"),
    )
    resumable = [run.id for run in selected if run.status in RESUMABLE_STATUSES]
    resume.button(
        f"Resume {len(resumable)}",
        disabled=not resumable,
        key="runs_resume",
        on_click=_apply,
        args=("resume", resumable, "Requeued"),
    )
    confirm = delete.checkbox(
        "Really delete", key="runs_delete_confirm", help="Deletes the runs with their metrics, checkpoints and videos"
    )
    delete.button(
        f"Delete {len(ids)}",
        disabled=not confirm or bool(active),
        key="runs_delete",
        on_click=_apply,
        args=("delete", ids, "Deleted"),
        help="Cancel running runs first" if active else None,
    )
    _tags_and_notes(selected)
    _settings(selected)
    _failures(selected)


@guarded
def _apply(action: str, run_ids: list[int], done: str) -> None:
    lab = api()
    succeeded, refused = [], []
    for run_id in run_ids:
        _, reason = refusal(getattr(lab, action), run_id)
        (succeeded if reason is None else refused).append(reason or run_id)
    if action == "delete":
        st.session_state[SELECTION_KEY] = []
        st.session_state["runs_delete_confirm"] = False
    if succeeded:
        st.session_state["runs_message"] = f"{done} {', '.join(f'#{i}' for i in succeeded)}"
    if refused:
        st.session_state["runs_refused"] = "; ".join(refused)


def _tags_and_notes(selected: list[Any]) -> None:
    """Widget keys carry the selection so that the inputs show the newly selected runs' tags and notes."""
    ids = [run.id for run in selected]
    suffix = "_".join(map(str, ids))
    with st.form("runs_annotate", border=True):
        shared_tags = sorted(set.intersection(*(set(run.tags) for run in selected)))
        st.text_input(
            "Tags (comma-separated; replaces the selected runs' tags)",
            ", ".join(shared_tags),
            key=f"runs_tags_{suffix}",
        )
        st.text_area(
            "Notes",
            selected[0].notes,
            disabled=len(selected) != 1,
            key=f"runs_notes_{suffix}",
            help="Select one run to edit its notes",
        )
        st.form_submit_button("Save tags and notes", on_click=_save_annotations, args=(ids, suffix))


@guarded
def _save_annotations(run_ids: list[int], suffix: str) -> None:
    lab = api()
    tags = list(dict.fromkeys(t.strip() for t in st.session_state[f"runs_tags_{suffix}"].split(",") if t.strip()))
    for run_id in run_ids:
        lab.set_tags(run_id, tags)
    if len(run_ids) == 1:
        lab.set_notes(run_ids[0], st.session_state[f"runs_notes_{suffix}"])
    st.session_state["runs_message"] = f"Saved tags and notes of {', '.join(f'#{i}' for i in run_ids)}"


def _settings(selected: list[Any]) -> None:
    """Every setting of the selected runs, a column per run (those that differ first)."""
    with st.expander(f"Settings of the selected runs ({len(selected)})"):
        st.dataframe(settings_table(selected), hide_index=True, key="runs_settings_table")


def _failures(selected: list[Any]) -> None:
    for run in selected:
        if run.error or run.traceback:
            with st.expander(f"#{run.id} {run.name}: {run.status} — {(run.error or '').splitlines()[0][:100]}"):
                st.code(run.traceback or run.error, language="text")
