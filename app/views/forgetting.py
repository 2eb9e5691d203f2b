"""Forgetting: the seen-vs-unseen trade-off of paper Fig. 3, one panel per held-out task."""

from __future__ import annotations

import csv
import io
import textwrap
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app import exports
from app.backend import api
from app.charts import show_figure
from app.figures import forgetting_figure, forgetting_points
from app.run_groups import group_runs
from app.views.common import guarded, ids_from_query, labeller, query_writer
from app.views.run import page_url

TITLE_LINE = 22
"""Characters per line of a panel title: four panels side by side still fit a 1024 px wide window."""
TITLE_LINES = 2


@guarded
def render() -> None:
    st.title("Forgetting")
    st.caption(
        "Each point is a checkpoint: x = success on the seen (trained) tasks, y = success on one held-out "
        "task. The upper right keeps both; a run drifting down as it moves right forgets."
    )
    lab = api()
    candidates = [run for run in lab.list_runs() if run.config.get("unseen_tasks")]
    if not candidates:
        st.info("No run evaluates unseen tasks yet. Launch the *Forgetting study* preset (or set `unseen_tasks`).")
        return
    known = [run.id for run in candidates]
    if "forgetting_runs" not in st.session_state:
        st.session_state["forgetting_runs"] = ids_from_query("runs", known) or _latest_study(candidates)
    run_ids = st.multiselect(
        "Runs",
        known,
        key="forgetting_runs",
        format_func=labeller(candidates),
        on_change=query_writer("forgetting_runs", "runs"),
    )
    runs = [run for run in candidates if run.id in run_ids]
    tasks = list(dict.fromkeys(task for run in runs for task in run.config.get("unseen_tasks", [])))
    if not runs or not tasks:
        st.info("Pick runs that evaluate unseen tasks.")
        return
    checkpoints = {run.id: lab.checkpoints(run.id) for run in runs}
    points = forgetting_points(checkpoints, tasks)
    if not points:
        st.info("The selected runs have no evaluated checkpoint yet.")
        return
    labels = {run_id: group.legend for group in group_runs(runs) for run_id in group.run_ids}
    figure = fit_panel_titles(forgetting_figure(points, tasks, labels, {run.id: run.name for run in runs}), tasks)
    show_figure(figure, key="forgetting_chart", filename="forgetting")
    exports.download_buttons(figure, "forgetting", key="forgetting_export")
    st.download_button(
        "Download the points (CSV)",
        _points_csv(points, runs),
        file_name="opd-forgetting.csv",
        mime="text/csv",
        key="forgetting_csv",
    )
    st.dataframe(
        _run_rows(runs, points, labels),
        hide_index=True,
        key="forgetting_runs_table",
        column_config={
            "run": st.column_config.LinkColumn(
                "run", display_text=r"run\?id=(\d+)", width="small", help="The run's id: open its page"
            ),
            "seen": st.column_config.NumberColumn("seen (last)", format="%.2f"),
            "unseen": st.column_config.NumberColumn("unseen (last, mean)", format="%.2f"),
        },
    )


def short_title(text: str, width: int = TITLE_LINE, lines: int = TITLE_LINES) -> str:
    """A panel title wrapped onto at most `lines` lines of `width` characters (Plotly's <br>), cut with an
    ellipsis beyond that."""
    wrapped = textwrap.wrap(text, width=width, break_long_words=True) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1].rstrip() + "…"
    return "<br>".join(wrapped)


def fit_panel_titles(figure: go.Figure, tasks: list[str]) -> go.Figure:
    """Wrap the panel titles (the figure's first annotations, one per task, as make_subplots puts them) so they
    fit their panel; the full task name shows on hover."""
    lines = 1
    for annotation, task in zip(list(figure.layout.annotations), tasks):
        title = short_title(annotation.text or "")
        lines = max(lines, title.count("<br>") + 1)
        annotation.update(text=title, hovertext=task, font={"size": 13}, yanchor="bottom")
    figure.update_layout(
        margin={"t": 44 + 18 * lines, "b": 90},
        legend={"y": -0.3, "yanchor": "top"},
        height=(figure.layout.height or 390) + 50,
    )
    return figure


def _run_rows(runs: list[Any], points, labels: dict[int, str]) -> list[dict[str, Any]]:
    """One row per run on the chart, linking to its page, with its last checkpoint's numbers."""
    rows = []
    for run in runs:
        mine = [p for p in points if p.run_id == run.id]
        last = max((p.step for p in mine), default=None)
        at_last = [p for p in mine if p.step == last]
        rows.append(
            {
                "run": page_url(run.id),
                "name": run.name,
                "legend": labels.get(run.id, ""),
                "last step": last,
                "seen": at_last[0].seen if at_last else None,
                "unseen": sum(p.unseen for p in at_last) / len(at_last) if at_last else None,
            }
        )
    return rows


def _latest_study(candidates: list[Any]) -> list[int]:
    """Default selection: the newest sweep that evaluates unseen tasks, else the newest such run."""
    newest = candidates[0]
    if newest.sweep_id is None:
        return [newest.id]
    return [run.id for run in candidates if run.sweep_id == newest.sweep_id]


def _points_csv(points, runs) -> str:
    names = {run.id: run.name for run in runs}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run_id", "run_name", "step", "seen_success", "unseen_task", "unseen_success"])
    for point in points:
        writer.writerow([point.run_id, names.get(point.run_id, ""), point.step, point.seen, point.task, point.unseen])
    return out.getvalue()
