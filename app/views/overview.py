"""Overview: what the lab is doing now; on an empty store, the newcomer's path to a first set of curves."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from app import demo, navigation
from app.backend import api
from app.runs_table import STATUSES
from app.views.common import guarded, refusal, run_label

SHOWN_RUNS = 10


@guarded
def render() -> None:
    st.title("OPD Lab")
    st.caption("On-policy distillation of VLA policies: launch runs and sweeps, watch them live, compare methods.")
    lab = api()
    runs = lab.list_runs()
    if not runs:
        _first_visit("Welcome: the store is empty")
        return
    counts = Counter(run.status for run in runs)
    for column, status in zip(st.columns(len(STATUSES)), STATUSES):
        column.metric(status, counts.get(status, 0))
    active = [run for run in runs if run.status in ("queued", "running")]
    st.subheader("Active runs" if active else "Latest runs")
    shown = (active or runs)[:SHOWN_RUNS]
    for run in shown:
        st.progress(float(run.progress), text=f"{run_label(run)} · step {run.step}/{run.total_steps}")
    if len(active or runs) > len(shown):
        st.caption(f"and {len(active or runs) - len(shown)} more on the Runs page")
    st.page_link(
        navigation.page("compare"),
        label="Watch them on Compare",
        icon=":material/monitoring:",
        query_params={"runs": [str(run.id) for run in (active or runs)[:8]]},
    )
    if all(run.config.get("pipeline") == "sft" for run in runs):
        _first_visit("No distillation run yet")


def _first_visit(headline: str) -> None:
    """The quick reproduction, offered until the lab has run its first on-policy method."""
    st.subheader(headline)
    st.markdown(
        "The **quick reproduction** (`opd reproduce --quick` as a sweep) distills a 1-demo student from a "
        "teacher with sampled and exact reverse KL, forward KL and hard CE, next to GRPO on the same batch: "
        "five small runs whose curves appear within minutes."
    )
    found = demo.find_checkpoints(api())
    if found is None:
        st.warning(
            "The quick reproduction starts from a teacher and a 1-demo student on the object suite, and "
            "neither the store (finished sft runs) nor the folders "
            f"{demo.describe_roots()} hold them yet. Make them once by training the configs/ "
            "chain with `opd train` (pretrain_base, then teacher_object and student_object_1demo; see the "
            "README), or launch any run yourself."
        )
        st.page_link(navigation.page("launch"), label="Open the Launch form", icon=":material/rocket_launch:")
        return
    st.caption(f"Teacher: `{found.teacher}`  \nStudent: `{found.student}`")
    if st.button("Run the quick reproduction", type="primary", key="demo_launch"):
        run_ids, reason = refusal(demo.launch_quick, api(), found)
        if reason is not None:
            st.error(f"Not launched: {reason}")
            return
        st.success(f"Queued {len(run_ids)} runs: " + ", ".join(f"#{i}" for i in run_ids))
        st.page_link(
            navigation.page("compare"),
            label="Watch the curves grow",
            icon=":material/monitoring:",
            query_params={"runs": [str(i) for i in run_ids]},
        )
