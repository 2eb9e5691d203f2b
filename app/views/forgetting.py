"""Forgetting: the seen-vs-unseen trade-off of paper Fig. 3, one panel per held-out task."""

from __future__ import annotations

import csv
import io
from typing import Any

import streamlit as st

from app.backend import api
from app.figures import PLOTLY_CONFIG, forgetting_figure, forgetting_points
from app.run_groups import group_runs
from app.views.common import guarded, ids_from_query, labeller, query_writer


@guarded
def render() -> None:
    st.title("Forgetting")
    st.caption("Each point is a checkpoint: x = success on the seen (trained) tasks, y = success on one held-out "
               "task. The upper right keeps both; a run drifting down as it moves right forgets.")
    lab = api()
    candidates = [run for run in lab.list_runs() if run.config.get("unseen_tasks")]
    if not candidates:
        st.info("No run evaluates unseen tasks yet. Launch the *Forgetting study* preset (or set `unseen_tasks`).")
        return
    known = [run.id for run in candidates]
    if "forgetting_runs" not in st.session_state:
        st.session_state["forgetting_runs"] = ids_from_query("runs", known) or _latest_study(candidates)
    run_ids = st.multiselect("Runs", known, key="forgetting_runs", format_func=labeller(candidates),
                             on_change=query_writer("forgetting_runs", "runs"))
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
    figure = forgetting_figure(points, tasks, labels, {run.id: run.name for run in runs})
    st.plotly_chart(figure, config={**PLOTLY_CONFIG, "toImageButtonOptions": {
        **PLOTLY_CONFIG["toImageButtonOptions"], "filename": "forgetting"}}, key="forgetting_chart")
    st.download_button("Download the points (CSV)", _points_csv(points, runs), file_name="opd-forgetting.csv",
                       mime="text/csv", key="forgetting_csv")


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
