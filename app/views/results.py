"""Results: the paper's Table 2 from the store's final checkpoints, exportable as CSV, Markdown and LaTeX."""

from __future__ import annotations

import streamlit as st

from app.backend import api
from app.references import reference_summaries
from app.results_table import STUDY_TAG, results_table, studies, study_table, tag_value
from app.views.common import guarded


@guarded
def render() -> None:
    st.title("Results")
    st.caption(
        "Seen-task success (%) at each run's final checkpoint, per suite and method; mean ± standard "
        "deviation over seeds. The teacher row is the runs' teachers' own evaluation on the same tasks (the "
        "lab's teachers from the store, shipped ones from the evaluation recorded with them), the "
        "student-init row the step-0 evaluation of the runs."
    )
    lab = api()
    all_runs = sorted(lab.list_runs(), key=lambda run: run.id)  # rows in launch order
    found = studies(all_runs)
    study = st.selectbox(
        "Table",
        [*found, ""],
        key="results_study",
        format_func=lambda s: f"Table 2 of study {s!r}" if s else "runs grouped by their settings",
        help="A study sent with `opd reproduce --queue` is laid out as its report.md's Table 2",
    )
    left, right = st.columns(2)
    if not study:
        sweeps = {sweep.id: sweep.name for sweep in lab.list_sweeps()}
        sweep_id = left.selectbox(
            "Sweep",
            [None, *sweeps],
            key="results_sweep",
            format_func=lambda s: "all runs" if s is None else f"#{s} {sweeps[s]}",
        )
    include_unfinished = right.toggle(
        "Include unfinished runs",
        value=False,
        key="results_unfinished",
        help="Use the latest checkpoint of running, cancelled or crashed runs too",
    )
    runs = [
        run
        for run in all_runs
        if (tag_value(run, STUDY_TAG) == study if study else sweep_id is None or run.sweep_id == sweep_id)
        and (include_unfinished or run.status == "finished")
    ]
    if not runs:
        st.info("No finished runs to tabulate yet.")
        return
    checkpoints = {run.id: lab.checkpoints(run.id) for run in runs}
    summaries = {path: summary for path, (_, summary) in reference_summaries(lab, runs, all_runs).items()}
    tabulate = study_table if study else results_table
    table = tabulate(runs, checkpoints, summaries, lab.artifact_path)
    if study:
        st.caption(
            f"Study {study!r}: each method's cell is its checkpoint at the study's nominal length (an extended "
            "Figure-2 run goes on past it), mean ± standard deviation over seeds; Avg. over the suites."
        )
    if not table.rows:
        st.info("The selected runs have no evaluated checkpoint yet.")
        return
    labels = {suite: st.column_config.TextColumn(suite.capitalize()) for suite in table.suites}
    st.dataframe(
        table.display_rows(),
        hide_index=True,
        key="results_table",
        column_config={
            "method": st.column_config.TextColumn("Method", width="large"),
            **labels,
            "avg.": st.column_config.TextColumn("Avg."),
        },
    )
    csv_column, markdown_column, latex_column = st.columns(3)
    csv_column.download_button(
        "Download CSV", table.to_csv(), file_name="opd-results.csv", mime="text/csv", key="results_csv"
    )
    markdown, latex = table.to_markdown(), table.to_latex()
    markdown_column.download_button(
        "Download Markdown", markdown, file_name="opd-results.md", mime="text/markdown", key="results_md"
    )
    latex_column.download_button(
        "Download LaTeX", latex, file_name="opd-results.tex", mime="application/x-tex", key="results_tex"
    )
    with st.expander("Markdown"):
        st.code(markdown, language="markdown")
    with st.expander("LaTeX (booktabs)"):
        st.code(latex, language="latex")
