"""The Compare page's data + figure build (app.compare), against the in-memory API."""

import csv
import io
from dataclasses import replace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import backend
from app.compare import build_view, chart_keys, diff_rows, legend_title, runs_csv, teacher_references, view_signature
from app.views.common import labeller
from html_tables import read_html_table
from test_app_fakes import Checkpoint, FakeApi, Run, config, series, summary


def _lab() -> FakeApi:
    lab = FakeApi(data_dir="/data")
    teacher = lab.add_run(config=config(pipeline="sft", suite="object", demos="/d"))
    lab.checkpoint_rows[teacher.id] = [
        Checkpoint(teacher.id, 50, "runs/1/checkpoints/step_50", summary(0.9, {"object/a": 1.0, "object/b": 0.8}))
    ]
    for seed in (0, 1):
        run = lab.add_run(config=config(seed=seed, teacher_checkpoint="/data/runs/1/checkpoints/step_50"))
        steps = np.arange(1, 11)
        lab.series[run.id] = {
            "train/success": series(steps, steps / 10 + seed / 100),
            "train/entropy": series(steps, 3 - steps / 10),
            "time/wall_seconds": series(steps, steps * 2.0),
        }
    lab.add_run(config=config(objective="hard_ce", teacher_checkpoint="/data/runs/1/checkpoints/step_50"))
    return lab


def test_build_view_groups_seeds_into_one_band_per_setting():
    lab = _lab()
    runs = [lab.runs[2], lab.runs[3], lab.runs[4]]
    view = build_view(lab, runs, ["train/success", "train/entropy"], axis="wall_time", smoothing=0.5)
    assert [g.legend for g in view.groups] == ["#2,3 OPD (reverse KL) (2 seeds)", "#4 OPD (hard CE)"]
    success = view.figures[0][1]
    assert view.figures[0][0] == "train/success"
    mean = [t for t in success.data if t.name == "#2,3 OPD (reverse KL) (2 seeds)" and t.fill is None][-1]
    assert list(mean.x) == [2.0 * s for s in range(1, 11)]  # wall time, not steps
    # the hard-CE run has no metrics: no trace, no error
    assert all(t.name != "#4 OPD (hard CE)" for t in success.data)
    # the metrics request carries the wall-time series the x-axis needs
    assert ("metrics", [2, 3, 4], ["train/success", "train/entropy", "time/wall_seconds"]) in lab.calls


def test_teacher_reference_is_the_teachers_success_on_the_runs_seen_tasks():
    lab = _lab()
    runs = [lab.runs[2], lab.runs[3], lab.runs[4]]
    runs_with_tasks = [replace(r, config={**r.config, "tasks": ["object/a", "object/b"]}) for r in runs]
    references = teacher_references(lab, runs_with_tasks, list(lab.runs.values()))
    assert [(r.label, r.value) for r in references] == [("teacher #1", 0.9)]
    view = build_view(lab, runs, ["train/success", "train/entropy"], references=references)
    assert len(view.figures[0][1].layout.shapes) == 1 and len(view.figures[1][1].layout.shapes) == 0
    # only the teacher's own run is asked for its checkpoints
    assert [c for c in lab.calls if c[0] == "checkpoints"] == [("checkpoints", 1)]


def test_runs_csv_is_long_format():
    lab = _lab()
    runs = [lab.runs[2]]
    view = build_view(lab, runs, ["train/success"])
    rows = list(csv.DictReader(io.StringIO(runs_csv(runs, view.data, ["train/success"]))))
    assert len(rows) == 10 and rows[0]["key"] == "train/success" and float(rows[-1]["value"]) == 1.0


def test_a_teacher_path_relative_to_the_data_directory_is_found_too():
    lab = _lab()
    run = lab.runs[2]
    relative = replace(run, config={**run.config, "teacher_checkpoint": "runs/1/checkpoints/step_50"})
    assert [r.value for r in teacher_references(lab, [relative], list(lab.runs.values()))] == [0.9]


# ============================================================================================ the page (AppTest)
def _open_compare(query: dict) -> AppTest:
    def script() -> None:
        from app.main import main

        main(default="compare")

    at = AppTest.from_function(script, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def page_lab():
    fake = FakeApi()
    backend.install(fake)
    yield fake
    backend.uninstall()


def _live_runs(lab: FakeApi) -> list[int]:
    ids = []
    for index, status in enumerate(("queued", "queued", "running")):
        run = lab.add_run(
            config=config(
                seed=index,
                objective=("reverse_kl", "hard_ce", "forward_kl")[index],
                name=f"quick reproduction arm {index} with a long name",
            ),
            status=status,
            step=index,
            total_steps=30,
        )
        steps = np.arange(1, 11)
        lab.series[run.id] = {
            "train/success": series(steps, steps / 10),
            "train/entropy": series(steps, 3 - steps / 5),
            "train/reverse_kl/dx": series(steps, steps / 7),
        }
        ids.append(run.id)
    return ids


def test_runs_stay_selected_by_id_while_their_statuses_change_and_a_control_moves(page_lab):
    """Issue 12's bug: status in the option labels made Streamlit map the browser's (old) labels to nothing."""
    ids = _live_runs(page_lab)
    at = _open_compare({"runs": [str(i) for i in ids]})
    assert at.multiselect(key="compare_runs").value == ids
    for run_id, status in zip(ids, ("running", "finished", "finished")):  # queued -> running -> finished
        page_lab.runs[run_id] = replace(page_lab.runs[run_id], status=status, step=30)
    at.slider(key="compare_smooth").set_value(0.4).run()
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == ids
    assert at.query_params["runs"] == [str(i) for i in ids] and at.query_params["smooth"] == "0.4"
    # the statuses are redrawn: the diff table holds them, and the labels hold none
    table = read_html_table(at)
    assert table["status"] == ["running", "finished", "finished"]
    assert table["run"] == [f"/run?id={i}" for i in ids]
    assert "objective" in table and "seed" in table and "lr" not in table


def test_every_control_restores_from_the_url_and_writes_back_ids_and_codes(page_lab):
    ids = _live_runs(page_lab)
    query = {
        "runs": [str(ids[0]), str(ids[2])],
        "keys": ["train/entropy"],
        "x": "env_steps",
        "smooth": "0.3",
        "group": "objective",
        "band": "sem",
        "filter": "kl",
        "dims": "reverse_kl",
        "live": "0",
    }
    at = _open_compare(query)
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == [ids[0], ids[2]]
    assert at.multiselect(key="compare_keys").value == ["train/entropy"]
    assert (at.radio(key="compare_x").value, at.slider(key="compare_smooth").value) == ("env_steps", 0.3)
    assert (at.selectbox(key="compare_group").value, at.selectbox(key="compare_band").value) == ("objective", "sem")
    assert at.selectbox(key="compare_dims").value == "reverse_kl" and at.toggle(key="compare_live").value is False
    assert at.text_input(key="compare_filter").value == "kl"
    at.selectbox(key="compare_group").set_value("seed").run()
    assert at.query_params["group"] == "seed" and at.query_params["runs"] == [str(ids[0]), str(ids[2])]
    assert at.query_params["filter"] == "kl" and at.query_params["live"] == "0"


def test_labels_of_run_widgets_do_not_change_with_status():
    runs = [Run(1, name="a " * 40, status="queued"), Run(2, name="b", status="queued")]
    before = [labeller(runs)(i) for i in (1, 2)]
    after = [labeller([replace(r, status="finished") for r in runs])(i) for i in (1, 2)]
    assert before == after and before[1] == "#2 b" and len(before[0]) <= 52 and before[0].startswith("#1 a")


# ============================================================================================ plain functions
def test_group_by_any_field_and_no_grouping():
    lab = _lab()
    runs = [lab.runs[2], lab.runs[3], lab.runs[4]]
    by_seed = build_view(lab, runs, ["train/success"], group_by="seed")
    assert [(g.label, g.run_ids) for g in by_seed.groups] == [("seed=0", (2, 4)), ("seed=1", (3,))]
    per_run = build_view(lab, runs, ["train/success"], group_by="run")
    assert [g.run_ids for g in per_run.groups] == [(2,), (3,), (4,)]
    assert legend_title(runs, "settings") == "seeds folded · differs: objective"


def test_smoothing_keeps_the_raw_mean_behind_and_hover_names_the_differing_fields():
    lab = _lab()
    runs = [lab.runs[2], lab.runs[3], lab.runs[4]]
    view = build_view(lab, runs, ["train/success"], smoothing=0.6, group_by="run")
    traces = view.figures[0][1].data
    faint = [t for t in traces if t.opacity == 0.25]
    assert len(faint) == 2 and list(faint[0].y) == [s / 10 for s in range(1, 11)]
    mean = [t for t in traces if t.showlegend][0]
    assert "seed=0" in mean.hovertemplate and "objective=reverse_kl" in mean.hovertemplate
    assert mean.y[1] != 0.2  # smoothed


def test_decimation_caps_every_drawn_line():
    lab = FakeApi()
    run = lab.add_run(config=config())
    steps = np.arange(1, 10_001)
    lab.series[run.id] = {"train/success": series(steps, np.sin(steps / 100))}
    view = build_view(lab, [run], ["train/success"], smoothing=0.5, max_points=800)
    assert all(len(t.x) <= 800 for t in view.figures[0][1].data)


def test_chart_keys_pins_then_adds_matches_and_survives_a_bad_regex():
    available = ["train/success", "train/reverse_kl", "train/forward_kl", "train/entropy", "eval/seen_success"]
    assert chart_keys(available, ["train/success"], "") == (["train/success"], None)
    assert chart_keys(available, ["train/success"], "KL$")[0] == [
        "train/success",
        "train/reverse_kl",
        "train/forward_kl",
    ]
    keys, note = chart_keys(available, [], "kl(")
    assert keys == [] and "not a regular expression" in note
    keys, note = chart_keys(available, [], "train", limit=2)
    assert len(keys) == 2 and "showing the first 2" in note


def test_per_dimension_small_multiples():
    lab = FakeApi()
    run = lab.add_run(config=config())
    steps = np.arange(1, 6)
    lab.series[run.id] = {f"train/entropy/{dim}": series(steps, steps * 1.0) for dim in ("dx", "dy", "gripper")}
    view = build_view(lab, [run], [], dims_family="entropy")
    assert [a.text for a in view.dims_figure.layout.annotations] == ["dx", "dy", "gripper"]
    assert build_view(lab, [run], [], dims_family="forward_kl").dims_figure is None


def test_diff_rows_only_differing_fields_and_a_link_per_run():
    lab = _lab()
    runs = [lab.runs[2], lab.runs[3]]
    rows = diff_rows(runs, build_view(lab, runs, ["train/success"]).groups)
    assert [r["run"] for r in rows] == ["/run?id=2", "/run?id=3"]
    assert [r["seed"] for r in rows] == [0, 1] and "objective" not in rows[0]


def test_view_signature_changes_with_a_runs_progress_and_the_parameters_only():
    run = Run(1, status="running", step=5)
    same = view_signature([run], ["train/success"], "step", 0.5)
    assert view_signature([run], ["train/success"], "step", 0.5) == same
    assert view_signature([replace(run, step=6)], ["train/success"], "step", 0.5) != same
    assert view_signature([replace(run, status="finished")], ["train/success"], "step", 0.5) != same
    assert view_signature([run], ["train/success"], "step", 0.6) != same
