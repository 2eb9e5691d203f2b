"""The run page, the sweep view, the Runs table's fixes, Forgetting's panel titles and the server-side exports,
through the real navigation with the in-memory worker API (AppTest), and their plain functions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from app import exports
from app.runs_table import differing_settings, filter_runs, retry_reasons, run_rows, settings_table
from app.views import run as run_view
from app.views import sweep as sweep_view
from app.views.forgetting import fit_panel_titles, short_title
from test_app_fakes import T0, Checkpoint, RunEvent, config, series, summary
from test_app_pages import lab, open_page, populated, texts  # noqa: F401 - lab is a fixture


def frame(at, column: str):
    """The first table on the page with this column (AppTest does not find dataframes by key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


# ============================================================================================ run page
def test_run_page_shows_a_failed_runs_error_traceback_and_history(lab):
    populated(lab)
    at = open_page("run", {"id": "5"})
    assert not at.exception
    assert at.title[0].value == "#5 grpo"
    assert "**Failed:** boom: it broke" in at.error[0].value
    assert any(e.label == "Traceback" for e in at.expander)
    assert "ValueError: boom" in "\n".join(c.value for c in at.code)
    history = frame(at, "event")
    assert list(history["event"]) == ["queued", "started", "failed"]  # no recorded events: from the run row
    assert history["detail"].iloc[2] == "boom: it broke"


def test_run_page_uses_the_apis_events_and_lists_checkpoints(lab):
    populated(lab)
    lab.events[2] = [
        RunEvent(T0, "queued", "queued on cpu"),
        RunEvent(T0 + timedelta(minutes=1), "started", "a1"),
        RunEvent(T0 + timedelta(minutes=5), "requeued", "re-queued: the worker was lost"),
        RunEvent(T0 + timedelta(minutes=6), "resumed", "resumed from step 10"),
    ]
    at = open_page("run", {"id": "2"})
    assert not at.exception and not at.error
    assert list(frame(at, "event")["event"]) == ["queued", "started", "requeued", "resumed"]
    table = frame(at, "seen success")
    assert list(table["step"]) == [0, 10, 20]
    assert table["seen success"].tolist() == pytest.approx([0.0, 0.4, 0.8])
    assert table["unseen/put_red_block_behind_tray"].tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert [b.label for b in at.get("download_button")][:2] == ["PNG", "SVG"]  # the evaluations chart's exports


def test_run_page_without_run_events_in_the_api_falls_back(lab):
    populated(lab)
    lab.run_events = None  # an older worker.api
    at = open_page("run", {"id": "2"})
    assert not at.exception
    assert list(frame(at, "event")["event"]) == ["queued", "started", "finished"]
    assert "keeps no event history" in texts(at)


def test_run_page_config_is_grouped_and_the_log_is_the_run_folders_tail(lab, tmp_path):
    populated(lab)
    lab.data_dir = str(tmp_path)
    folder = tmp_path / "runs/2"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "train/loss": s / 10}) + "\n" for s in range(100))
    )
    (folder / "checkpoints").mkdir()
    at = open_page("run", {"id": "2"})
    assert not at.exception
    sections = [e.label for e in at.expander]
    assert sections[0] == "What to run" and {
        "Environment",
        "Policies",
        "Optimisation",
        "Transformers checkpoints",
        "Evaluation, checkpoints, videos",
    } <= set(sections)
    environment = next(t.value for t in at.table if "unseen_tasks" in t.value.index)
    assert environment.loc["unseen_tasks", "value"] == (
        "unseen/put_red_block_behind_tray, unseen/put_green_block_to_the_left_of_plate"
    )
    assert environment.loc["tasks", "value"] == "(none)"
    codes = "\n".join(c.value for c in at.code)
    assert '"step": 99' in codes and '"step": 59' not in codes and '"step": 60' in codes  # the last 40 lines
    assert str(folder) in codes
    files = frame(at, "file")
    assert list(files["file"]) == ["checkpoints/", "metrics.jsonl"]


def test_run_page_follows_its_selectbox_into_the_url_and_reports_unknown_ids(lab):
    populated(lab)
    at = open_page("run", {"id": "99"})
    assert not at.exception and "No run with id '99'" in at.warning[0].value
    assert at.selectbox(key="run_page_id").value == 5  # the newest
    at.selectbox(key="run_page_id").set_value(3).run()
    assert at.query_params["id"] == "3" and at.title[0].value == "#3 reverse_kl-1"


def test_config_sections_keep_unknown_fields():
    grouped = run_view.config_sections({**config(), "future_field": 3})
    assert grouped["other"] == {"future_field": 3}
    assert list(grouped)[0] == "what to run" and "objective" in grouped["what to run"]


def test_tail_lines_reads_only_the_end(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(50_000)))
    assert run_view.tail_lines(path, 3, block=4096) == ["line 49997", "line 49998", "line 49999"]


# ============================================================================================ sweep
def sweep_lab(fake):
    """Two seeds x three group sizes, the final success rising with G."""
    for seed in (0, 1):
        for group_size in (2, 4, 8):
            run = fake.add_run(
                config=config(group_size=group_size, seed=seed, name=f"G{group_size}-s{seed}"), sweep_id=1
            )
            steps = np.arange(1, 11)
            fake.series[run.id] = {
                "eval/seen_success": series(steps, np.minimum(1, steps * group_size / 100) + seed / 100),
                "train/loss": series(steps, 1 / steps),
            }
    from test_app_fakes import Sweep

    fake.sweeps[1] = Sweep(
        1, "group size", {"group_size": [2, 4, 8], "seed": [0, 1]}, T0, sorted(fake.runs), {"finished": 6}
    )
    return fake


def test_sweep_page_plots_the_metric_against_the_swept_field(lab):
    sweep_lab(lab)
    at = open_page("sweep")
    assert not at.exception
    assert at.selectbox(key="sweep_id").value == 1 and at.multiselect(key="sweep_runs").value == [1, 2, 3, 4, 5, 6]
    assert at.selectbox(key="sweep_key").value == "eval/seen_success"
    assert at.selectbox(key="sweep_field").value == "group_size"
    assert at.selectbox(key="sweep_field").options == ["seed", "group_size"]
    table = frame(at, "name")
    assert table["eval/seen_success"].tolist() == pytest.approx([0.2, 0.4, 0.8, 0.21, 0.41, 0.81])
    assert list(table["run"]) == [f"run?id={i}" for i in range(1, 7)]
    at.radio(key="sweep_how").set_value("min").run()
    assert frame(at, "name")["eval/seen_success"].tolist() == pytest.approx([0.02, 0.04, 0.08, 0.03, 0.05, 0.09])
    assert [b.label for b in at.get("download_button")] == ["PNG", "SVG", "PNG", "SVG"]  # scatter + parallel


def test_sweep_page_takes_any_set_of_runs_from_the_url(lab):
    sweep_lab(lab)
    at = open_page("sweep", {"runs": ["1", "4"]})
    assert not at.exception and at.multiselect(key="sweep_runs").value == [1, 4]
    assert at.selectbox(key="sweep_field").options == ["seed"]  # G is the same for runs 1 and 4
    at = open_page("sweep", {"runs": ["1"]})
    assert "Pick two or more runs" in texts(at)


def test_sweep_scatter_marks_the_mean_per_value_and_a_trace_per_seed(lab):
    sweep_lab(lab)
    runs = sorted(lab.runs.values(), key=lambda r: r.id)
    fields = sweep_view.varying_fields([r.config for r in runs])
    assert fields == ["seed", "group_size"]
    points = sweep_view.sweep_points(
        runs, lab.metrics([r.id for r in runs], ["eval/seen_success"]), "eval/seen_success", "final", fields
    )
    figure = sweep_view.scatter_figure(points, "group_size", "eval/seen_success", "final")
    by_name = {trace.name: trace for trace in figure.data}
    assert set(by_name) == {"seed 0", "seed 1", "mean"}
    assert list(by_name["mean"].y) == pytest.approx([0.205, 0.405, 0.805])
    assert list(figure.layout.xaxis.ticktext) == ["2", "4", "8"]  # numeric order, not first-seen order
    assert figure.layout.yaxis.title.text == "eval/seen_success (final value)"
    parallel = sweep_view.parallel_figure(points, fields, "eval/seen_success", "final")
    assert [d.label for d in parallel.data[0].dimensions] == ["seed", "group_size", "eval/seen_success"]


def test_sweep_reduce_ignores_non_finite_values_and_names_bad_aggregates():
    values = np.array([0.1, np.nan, 0.7, 0.3, np.inf])
    assert sweep_view.reduce_series(values, "final") == 0.3
    assert sweep_view.reduce_series(values, "max") == 0.7
    assert sweep_view.reduce_series(np.array([np.nan]), "max") is None
    with pytest.raises(ValueError, match="unknown aggregate 'best'"):
        sweep_view.reduce_series(values, "best")


# ============================================================================================ runs
def test_runs_page_lists_the_runs_once_per_render_and_shows_a_message_once(lab):
    populated(lab)
    at = open_page("runs")
    assert not at.exception
    assert [c[0] for c in lab.calls].count("list_runs") == 1 and [c[0] for c in lab.calls].count("list_sweeps") == 1
    at.multiselect(key="runs_selected").set_value([3]).run()
    before = len(lab.calls)
    at.button(key="runs_cancel").click().run()
    assert [c[0] for c in lab.calls[before:]].count("list_runs") == 1
    assert [s.value for s in at.success] == ["Cancel requested for #3"]
    at.selectbox(key="runs_tag").set_value(None).run()
    assert not at.success  # popped, shown once


def test_runs_table_links_each_run_to_its_page_and_shows_what_differs(lab):
    populated(lab)
    at = open_page("runs")
    table = at.dataframe[0].value
    assert list(table["page"]) == [f"run?id={i}" for i in (5, 4, 3, 2, 1)]
    # every run has G=8 (not shown); the paths show their last part, an empty one a dash
    assert table["settings"].iloc[3] == "seed=0 · teacher_checkpoint=…/step_100 · demos=—"
    assert table["settings"].iloc[4] == "seed=0 · teacher_checkpoint=…/teacher · demos=…/d"
    at.multiselect(key="runs_selected").set_value([2]).run()
    assert any(link.label == "Open the page of #2 reverse_kl-0" for link in at.get("page_link"))
    at.multiselect(key="runs_selected").set_value([2, 3]).run()
    settings = frame(at, "differs")
    assert list(settings["field"])[:1] == ["seed"] and list(settings["differs"]).count(True) == 1
    assert list(settings.columns) == ["field", "differs", "#3 reverse_kl-1", "#2 reverse_kl-0"]  # table order


def test_runs_table_shows_the_attempt_and_why_it_was_queued_again(lab):
    populated(lab)
    lab.runs[2] = replace(lab.runs[2], attempt=2)
    lab.events[2] = [
        RunEvent(T0, "requeued", "re-queued: worker lost"),
        RunEvent(T0 + timedelta(minutes=2), "resumed", "resumed from step 10"),
    ]
    at = open_page("runs")
    table = at.dataframe[0].value
    row = table[table["id"] == 2].iloc[0]
    assert row["attempt"] == 2 and row["status"] == "finished (resumed from step 10)"
    assert table[table["id"] == 3].iloc[0]["attempt"] == 1


def test_retry_reasons_ask_only_for_later_attempts_and_survive_an_api_without_events(lab):
    populated(lab)
    runs = [replace(lab.runs[2], attempt=3), lab.runs[3]]
    lab.events[2] = [RunEvent(T0, "started", "a1")]
    assert retry_reasons(lab, runs) == {}
    assert ("run_events", 3) not in lab.calls
    lab.run_events = None
    assert retry_reasons(lab, runs) == {}


def test_settings_show_only_what_differs(lab):
    populated(lab)
    runs = [lab.runs[i] for i in (2, 3, 4)]
    assert differing_settings([r.config for r in runs]) == ["seed"]
    rows = run_rows(runs, {}, {})
    assert [r["settings"] for r in rows] == ["seed=0", "seed=1", "seed=0"]
    single = run_rows(runs[:1], {}, {})
    assert single[0]["settings"].startswith("G=8 · B=8")  # nothing differs: the key settings
    table = settings_table(runs)
    assert table[0]["field"] == "seed" and table[0]["differs"] and table[0]["#3 reverse_kl-1"] == "1"
    assert filter_runs(list(lab.runs.values()), status="running") == [lab.runs[3]]


# ============================================================================================ forgetting
def test_forgetting_panel_titles_wrap_and_keep_the_full_name_on_hover(lab):
    populated(lab)
    from app.figures import forgetting_figure, forgetting_points

    tasks = ["unseen/put_red_block_behind_tray", "unseen/put_green_block_to_the_left_of_the_white_plate_please"]
    points = forgetting_points({2: lab.checkpoint_rows[2]}, tasks)
    figure = fit_panel_titles(forgetting_figure(points, tasks, {2: "OPD"}), tasks)
    titles = [a.text for a in figure.layout.annotations]
    assert titles[0] == "put red block behind<br>tray"
    assert titles[1].endswith("…") and titles[1].count("<br>") == 1
    assert all(len(line) <= 22 for title in titles for line in title.split("<br>"))
    assert [a.hovertext for a in figure.layout.annotations] == tasks
    assert short_title("short") == "short"


def test_forgetting_page_lists_its_runs_with_links_and_exports(lab):
    populated(lab)
    at = open_page("forgetting")
    rows = frame(at, "last step")
    assert list(rows["run"]) == ["run?id=4"] and rows["last step"].iloc[0] == 20
    assert [b.label for b in at.get("download_button")] == ["PNG", "SVG", "Download the points (CSV)"]


# ============================================================================================ exports
def test_export_refuses_an_unknown_format():
    import plotly.graph_objects as go

    with pytest.raises(ValueError, match="unknown figure format 'gif'"):
        exports.figure_bytes(go.Figure(), "gif")


def test_export_says_why_it_is_unavailable(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "kaleido is not installed" in exports.exporter_problem()


@pytest.mark.skipif(
    exports.exporter_problem() is not None, reason=f"no server-side export here: {exports.exporter_problem()}"
)
def test_export_renders_png_and_svg_on_the_server():
    figure = run_view.checkpoint_figure(
        run_view.checkpoint_rows([Checkpoint(1, s, "p", summary(s / 10, unseen=0.2)) for s in (0, 5, 10)]),
        "evaluations",
    )
    png = exports.figure_bytes(figure, "png")
    svg = exports.figure_bytes(figure, "svg")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == exports.EXPORT_WIDTH * 2
    assert svg.lstrip().startswith(b"<svg") and b"evaluations" in svg
