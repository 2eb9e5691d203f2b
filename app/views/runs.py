"""Runs: every run with its status and latest numbers; filter, act on a selection, open it on Compare.

The table and the actions live in one fragment that refreshes itself every few seconds while any listed run
is queued or running, so progress moves without reloading the page (and without touching the filters).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import navigation
from app.backend import api
from app.runs_table import LATEST_KEYS, RESUMABLE_STATUSES, STATUSES, any_active, run_rows
from app.views.common import guarded, labeller, refusal

REFRESH_SECONDS = 3.0
SELECTION_KEY = "runs_selected"
TABLE_KEY = "runs_table"


@guarded
def render() -> None:
    st.title("Runs")
    filters = _filters()
    runs = api().list_runs(**filters)
    live = any_active(runs)
    st.fragment(run_every=REFRESH_SECONDS if live else None)(guarded(_table_and_actions))(filters)


def _filters() -> dict[str, Any]:
    lab = api()
    sweeps = {sweep.id: sweep.name for sweep in lab.list_sweeps()}
    tags = sorted({tag for run in lab.list_runs() for tag in run.tags})
    status_column, sweep_column, tag_column = st.columns(3)
    status = status_column.selectbox("Status", [None, *STATUSES], format_func=lambda s: s or "any", key="runs_status")
    sweep_id = sweep_column.selectbox("Sweep", [None, *sweeps], key="runs_sweep",
                                      format_func=lambda s: "any" if s is None else f"#{s} {sweeps[s]}")
    tag = tag_column.selectbox("Tag", [None, *tags], format_func=lambda t: t or "any", key="runs_tag")
    return {"status": status, "sweep_id": sweep_id, "tag": tag}


def _table_and_actions(filters: dict[str, Any]) -> None:
    lab = api()
    if message := st.session_state.pop("runs_message", None):
        st.success(message)
    if refused := st.session_state.pop("runs_refused", None):
        st.error(f"Refused: {refused}")
    runs = lab.list_runs(**filters)
    if not runs:
        st.info("No runs match these filters." if any(filters.values()) else "No runs yet: launch one.")
        st.page_link(navigation.page("launch"), label="Launch a run", icon=":material/rocket_launch:")
        return
    sweeps = {sweep.id: sweep.name for sweep in lab.list_sweeps()}
    rows = run_rows(runs, lab.latest_metrics([run.id for run in runs], LATEST_KEYS), sweeps)
    ids = [row["id"] for row in rows]
    st.dataframe(rows, key=TABLE_KEY, on_select=lambda: _table_selected(ids), selection_mode="multi-row",
                 hide_index=True, column_config=_column_config())
    if SELECTION_KEY in st.session_state:  # drop runs that left the list (deleted, filtered out)
        st.session_state[SELECTION_KEY] = [i for i in st.session_state[SELECTION_KEY] if i in ids]
    selected = st.multiselect("Selected runs (tick rows in the table, or pick here)", ids, key=SELECTION_KEY,
                              format_func=labeller(runs))
    _actions([run for run in runs if run.id in selected])


def _table_selected(ids: list[int]) -> None:
    rows = st.session_state[TABLE_KEY].selection.rows
    st.session_state[SELECTION_KEY] = [ids[i] for i in rows if i < len(ids)]


def _column_config() -> dict[str, Any]:
    number = st.column_config.NumberColumn
    return {
        "id": number("id", width="small"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "train success": number("train success", format="%.2f"),
        "seen success": number("seen success", format="%.2f"),
        "unseen success": number("unseen success", format="%.2f"),
        "entropy": number("entropy", format="%.3f"),
    }


def _actions(selected: list[Any]) -> None:
    """Buttons act through on_click callbacks: the action happens before the next (fragment) run draws the
    table, so the table always shows its effect."""
    if message := st.session_state.pop("runs_message", None):
        st.success(message)
    if not selected:
        st.caption("Select runs to compare, cancel, resume, delete, tag or annotate them.")
        return
    ids = [run.id for run in selected]
    compare, cancel, resume, delete = st.columns(4)
    compare.page_link(navigation.page("compare"), label=f"Compare {len(ids)} run(s)", icon=":material/monitoring:",
                      query_params={"runs": [str(i) for i in ids]})
    active = [run.id for run in selected if run.status in ("queued", "running")]
    cancel.button(f"Cancel {len(active)}", disabled=not active, key="runs_cancel", on_click=_apply,
                  args=("cancel", active, "Cancel requested for"))
    resumable = [run.id for run in selected if run.status in RESUMABLE_STATUSES]
    resume.button(f"Resume {len(resumable)}", disabled=not resumable, key="runs_resume", on_click=_apply,
                  args=("resume", resumable, "Requeued"))
    confirm = delete.checkbox("Really delete", key="runs_delete_confirm",
                              help="Deletes the runs with their metrics, checkpoints and videos")
    delete.button(f"Delete {len(ids)}", disabled=not confirm or bool(active), key="runs_delete", on_click=_apply,
                  args=("delete", ids, "Deleted"), help="Cancel running runs first" if active else None)
    _tags_and_notes(selected)
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
        st.text_input("Tags (comma-separated; replaces the selected runs' tags)", ", ".join(shared_tags),
                      key=f"runs_tags_{suffix}")
        st.text_area("Notes", selected[0].notes, disabled=len(selected) != 1, key=f"runs_notes_{suffix}",
                     help="Select one run to edit its notes")
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


def _failures(selected: list[Any]) -> None:
    for run in selected:
        if run.error or run.traceback:
            with st.expander(f"#{run.id} {run.name}: {run.status} — {(run.error or '').splitlines()[0][:100]}"):
                st.code(run.traceback or run.error, language="text")
