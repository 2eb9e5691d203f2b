"""Every page through the real navigation (app.main) with an in-memory worker API (Streamlit AppTest).

AppTest cannot render Plotly charts or videos (they come back as UnknownElement) nor tick dataframe rows:
those parts are tested as plain functions elsewhere and in the browser test (tests/e2e).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import backend
from opd_core.study.presets import QUICK
from test_app_fakes import Checkpoint, FakeApi, Video, config, series, summary

TIMEOUT = 30


def _script(page: str) -> None:
    from app.main import main

    main(default=page)


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_function(_script, kwargs={"page": page}, default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def lab():
    fake = FakeApi()
    backend.install(fake)
    yield fake
    backend.uninstall()


def populated(fake: FakeApi) -> FakeApi:
    """A finished teacher, two seeds of reverse KL (one running), forward KL, and a failed GRPO run."""
    teacher = fake.add_run(config=config(pipeline="sft", name="teacher", num_demos=50, demos="/d"), name="teacher")
    fake.checkpoint_rows[teacher.id] = [
        Checkpoint(teacher.id, 100, f"runs/{teacher.id}/checkpoints/step_100", summary(0.9))
    ]
    teacher_path = fake.artifact_path(f"runs/{teacher.id}/checkpoints/step_100")
    unseen = ["unseen/put_red_block_behind_tray", "unseen/put_green_block_to_the_left_of_plate"]
    for seed, objective, status in (
        (0, "reverse_kl", "finished"),
        (1, "reverse_kl", "running"),
        (0, "forward_kl", "finished"),
    ):
        run = fake.add_run(
            config=config(
                objective=objective,
                seed=seed,
                teacher_checkpoint=teacher_path,
                unseen_tasks=unseen,
                name=f"{objective}-{seed}",
            ),
            status=status,
            step=20,
            total_steps=30,
            progress=0.66,
            sweep_id=None,
        )
        steps = np.arange(1, 21)
        fake.series[run.id] = {
            "train/success": series(steps, steps / 25),
            "train/entropy": series(steps, 2.5 - steps / 50),
            "time/env_steps": series(steps, steps * 64.0),
        }
        fake.checkpoint_rows[run.id] = [
            Checkpoint(
                run.id,
                s,
                f"runs/{run.id}/checkpoints/step_{s}",
                summary(s / 25, {unseen[0]: 0.5 - s / 100, unseen[1]: 0.3}),
            )
            for s in (0, 10, 20)
        ]
        fake.video_rows[run.id] = [
            Video(run.id, s, "object/pick_red_block_into_basket", s > 0, f"runs/{run.id}/videos/step_{s}/x.mp4")
            for s in (0, 10)
        ]
    fake.add_run(
        config=config(pipeline="grpo", name="grpo"),
        status="failed",
        error="boom: it broke",
        traceback="Traceback...\nValueError: boom",
    )
    return fake


def texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value)
        for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning", "error")
        for e in getattr(at, kind)
    )


# ============================================================================================ overview + demo
def test_overview_counts_runs_by_status(lab):
    populated(lab)
    at = open_page("overview")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["finished"] == "3" and metrics["running"] == "1" and metrics["failed"] == "1"


def _shipped_checkpoint(folder, num_demos: int) -> None:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(
        json.dumps(
            {"format": "opd-checkpoint-v1", "step": 50, "run_config": config(pipeline="sft", num_demos=num_demos)}
        )
    )


def test_empty_store_offers_the_quick_reproduction(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("OPD_DEMO_CHECKPOINTS", str(tmp_path))
    at = open_page("overview")
    assert not at.exception and "store is empty" in texts(at)
    assert "hold them yet" in texts(at)  # no teacher or student anywhere yet
    _shipped_checkpoint(tmp_path / "teacher", num_demos=50)
    _shipped_checkpoint(tmp_path / "student", num_demos=1)
    at = open_page("overview")
    assert f"Teacher: `{tmp_path / 'teacher'}`" in texts(at)
    at.button(key="demo_launch").click().run()
    assert not at.exception, at.exception
    launched = [call for call in lab.calls if call[0] in ("launch_sweep", "launch")]
    assert launched[0][0] == "launch_sweep"
    assert launched[0][2] == {"objective": ["reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce"]}
    assert launched[0][1]["steps"] == QUICK.steps and launched[0][1]["group_size"] == QUICK.group_size
    grpo = launched[-1][1]
    assert grpo["pipeline"] == "grpo" and grpo["teacher_checkpoint"] == str(tmp_path / "teacher")
    assert "Queued 5 runs" in texts(at) and len(lab.runs) == 5


def test_the_labs_own_teacher_and_student_are_preferred(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("OPD_DEMO_CHECKPOINTS", str(tmp_path))
    _shipped_checkpoint(tmp_path / "teacher", num_demos=50)
    for num_demos in (50, 1):
        run = lab.add_run(config=config(pipeline="sft", suite="object", num_demos=num_demos, demos="/d"))
        lab.checkpoint_rows[run.id] = [Checkpoint(run.id, 5, f"runs/{run.id}/checkpoints/step_5", summary(0.5))]
    at = open_page("overview")
    assert "No distillation run yet" in texts(at)
    assert f"Teacher: `{lab.data_dir}/runs/1/checkpoints/step_5`" in texts(at)
    assert f"Student: `{lab.data_dir}/runs/2/checkpoints/step_5`" in texts(at)


def test_unreachable_store_shows_a_message_not_a_traceback(lab):
    lab.unavailable = "database unavailable (sqlite:////nowhere/opd.sqlite): unable to open database file"
    for page in ("overview", "launch", "runs", "compare", "forgetting", "videos", "results", "run", "sweep"):
        at = open_page(page)
        assert not at.exception, page
        assert "run store is unreachable" in at.error[0].value and "unable to open database file" in at.error[0].value


def test_a_missing_worker_api_is_a_message_too(monkeypatch):
    backend.uninstall()
    import importlib

    real_import = importlib.import_module

    def no_worker_api(name, *args):
        if name == "worker.api":
            raise ImportError("No module named 'worker.api'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_worker_api)
    at = open_page("runs")
    assert not at.exception and "worker API is not available" in at.error[0].value


# ============================================================================================ launch
def with_checkpoints(fake: FakeApi) -> tuple[str, str]:
    """A finished teacher and student in the store: the checkpoint pickers offer their final checkpoints."""
    paths = []
    for name, num_demos in (("teacher", 50), ("student", 1)):
        run = fake.add_run(config=config(pipeline="sft", name=name, num_demos=num_demos, demos="/d"))
        fake.checkpoint_rows[run.id] = [Checkpoint(run.id, 9, f"runs/{run.id}/checkpoints/step_9", summary(0.9))]
        paths.append(fake.artifact_path(f"runs/{run.id}/checkpoints/step_9"))
    return paths[0], paths[1]


def test_launch_form_is_generated_from_the_config_and_launches(lab):
    teacher, _ = with_checkpoints(lab)
    at = open_page("launch")
    assert not at.exception
    assert at.selectbox(key="launch_pipeline").value == "opd"
    assert at.number_input(key="launch_group_size").value == 8
    at.selectbox(key="launch_teacher_checkpoint").set_value(teacher)
    at.number_input(key="launch_group_size").set_value(4)
    at.text_input(key="launch_tags").input("first, try")
    at.button[0].click().run()  # Launch
    assert not at.exception
    (call,) = [c for c in lab.calls if c[0] == "launch"]
    launched = call[1]
    assert launched.group_size == 4 and launched.teacher_checkpoint == teacher
    assert lab.runs[3].tags == ["first", "try"]
    assert "Queued run #3" in texts(at)


def test_launch_shows_the_validation_error_next_to_its_field(lab):
    teacher, _ = with_checkpoints(lab)
    at = open_page("launch")
    at.selectbox(key="launch_teacher_checkpoint").set_value(teacher)
    at.number_input(key="launch_group_size").set_value(0)
    at.button[0].click().run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("group_size" in m and "at least 1" in m for m in messages)
    assert not [c for c in lab.calls if c[0] == "launch"]
    # the inline error sits right after the group_size widget in the form
    form = at.get("form")[0] if at.get("form") else None
    assert form is not None


def test_launch_several_seeds_makes_a_sweep(lab):
    teacher, _ = with_checkpoints(lab)
    at = open_page("launch")
    at.selectbox(key="launch_teacher_checkpoint").set_value(teacher)
    at.text_input(key="launch_seeds").input("0-2")
    at.button[0].click().run()
    (call,) = [c for c in lab.calls if c[0] == "launch_sweep"]
    assert call[2] == {"seed": [0, 1, 2]} and len(lab.runs) == 2 + 3


def test_launch_preset_sweeps_from_the_form_settings(lab):
    teacher, student = with_checkpoints(lab)
    at = open_page("launch")
    at.selectbox(key="launch_teacher_checkpoint").set_value(teacher)
    at.selectbox(key="launch_student_checkpoint").set_value(student)
    labels = [b.label for b in at.button]
    at.button[labels.index("Group size G")].click().run()
    assert not at.exception
    (call,) = [c for c in lab.calls if c[0] == "launch_sweep"]
    assert call[2] == {"group_size": [2, 4, 8]} and call[1]["teacher_checkpoint"] == teacher
    assert "3 runs queued" in texts(at)


def test_launch_preset_error_names_the_field(lab):
    at = open_page("launch")
    at.selectbox(key="launch_teacher_checkpoint").set_value("")  # the shipped teacher is the default: none
    labels = [b.label for b in at.button]
    at.button[labels.index("OPD vs GRPO")].click().run()
    assert any("teacher_checkpoint" in e.value for e in at.error)
    assert not [c for c in lab.calls if c[0] == "launch_sweep"]


def test_launch_offers_the_stores_checkpoints(lab):
    populated(lab)
    at = open_page("launch")
    options = at.selectbox(key="launch_teacher_checkpoint").options
    assert any("#1 teacher · object teacher · seen 90% · step 100" in option for option in options)


# ============================================================================================ runs
def test_runs_table_filters_and_actions(lab):
    populated(lab)
    at = open_page("runs")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["id"]) == [5, 4, 3, 2, 1] and table["status"].iloc[0] == "failed: boom: it broke"
    at.selectbox(key="runs_status").set_value("running").run()
    assert list(at.dataframe[0].value["id"]) == [3]
    at.multiselect(key="runs_selected").set_value([3]).run()
    at.button(key="runs_cancel").click().run()
    assert ("cancel", 3) in lab.calls and "Cancel requested for #3" in texts(at)


def test_runs_resume_delete_and_annotate(lab):
    populated(lab)
    at = open_page("runs")
    at.multiselect(key="runs_selected").set_value([5]).run()
    assert any("boom" in e.label for e in at.expander)  # the failed run's error and traceback
    at.button(key="runs_resume").click().run()
    assert ("resume", 5) in lab.calls
    at.text_input(key="runs_tags_5").input("baseline, grpo")
    at.text_area(key="runs_notes_5").input("the sparse-reward baseline")
    at.button(key="FormSubmitter:runs_annotate-Save tags and notes").click().run()
    assert lab.runs[5].tags == ["baseline", "grpo"] and lab.runs[5].notes == "the sparse-reward baseline"
    at.multiselect(key="runs_selected").set_value([4]).run()
    at.checkbox(key="runs_delete_confirm").check().run()
    at.button(key="runs_delete").click().run()
    assert ("delete", 4) in lab.calls and 4 not in lab.runs
    assert at.multiselect(key="runs_selected").value == []


def test_a_refused_action_is_a_message(lab):
    populated(lab)
    at = open_page("runs")
    at.multiselect(key="runs_selected").set_value([5]).run()
    lab.runs[5] = replace(lab.runs[5], status="finished")  # it changed in the meantime
    at.button(key="runs_resume").click().run()
    assert not at.exception
    assert any("Refused: run 5 is finished" in e.value for e in at.error)


# ============================================================================================ compare
def test_compare_reads_the_selection_from_the_url_and_writes_it_back(lab):
    populated(lab)
    at = open_page("compare", {"runs": ["2", "3"], "x": "env_steps", "smooth": "0.5"})
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == [2, 3]
    assert at.radio(key="compare_x").value == "env_steps" and at.slider(key="compare_smooth").value == 0.5
    assert at.multiselect(key="compare_keys").value == ["train/success", "train/entropy"]
    at.multiselect(key="compare_runs").select(4).run()
    assert at.query_params["runs"] == ["2", "3", "4"]
    at.radio(key="compare_x").set_value("step").run()
    assert at.query_params["x"] == "step"
    assert "#3 running 20/30" in texts(at)  # the live fragment's status line


def test_compare_without_selection_explains_what_to_do(lab):
    populated(lab)
    at = open_page("compare")
    assert not at.exception and "Pick runs" in texts(at)


def test_compare_adds_a_sweeps_runs(lab):
    populated(lab)
    sweep_id, run_ids = lab.launch_sweep(config(teacher_checkpoint="/t"), {"seed": [0, 1]}, "seeds")
    at = open_page("compare")
    at.selectbox(key="compare_add_sweep").set_value(sweep_id).run()
    assert at.multiselect(key="compare_runs").value == run_ids


# ================================================================================= forgetting, videos, results
def test_forgetting_page_defaults_to_the_runs_with_unseen_tasks(lab):
    populated(lab)
    at = open_page("forgetting")
    assert not at.exception
    assert at.multiselect(key="forgetting_runs").value == [4]  # the newest such run (no sweep)
    at.multiselect(key="forgetting_runs").set_value([2, 3, 4]).run()
    assert not at.exception and at.query_params["runs"] == ["2", "3", "4"]


def test_videos_grid_one_step_slider_drives_every_player(lab, tmp_path):
    populated(lab)
    lab.data_dir = str(tmp_path)
    video = tmp_path / "runs/2/videos/step_10/x.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    lab.video_rows[3] = [Video(3, 10, "object/other_task", False, "runs/3/videos/step_10/y.mp4")]
    at = open_page("videos", {"runs": ["2", "4", "3"]})
    assert not at.exception
    assert at.multiselect(key="videos_runs").value == [2, 4, 3]
    assert at.select_slider(key="videos_step").value == 10 and at.select_slider(key="videos_step").options == [
        "0",
        "10",
    ]
    assert at.multiselect(key="videos_tasks").value == ["object/pick_red_block_into_basket", "object/other_task"]
    text = texts(at)
    assert text.count(":green-badge[✓ success]") == 2 and text.count(":red-badge[✗ failure]") == 1
    assert "The video file is missing" in text  # run 4's file was never written
    assert "`object/other_task`: no video at step 10" in text  # runs 2 and 4 did not film that task
    at.select_slider(key="videos_step").set_value(0).run()
    assert not at.exception and at.query_params["step"] == "0"
    assert texts(at).count(":red-badge[✗ failure]") == 2 and ":green-badge" not in texts(at)
    at.radio(key="videos_layout").set_value("columns").run()
    assert not at.exception and texts(at).count("#2 reverse_kl-0") >= 1
    at.multiselect(key="videos_runs").set_value([4]).run()
    assert at.query_params["runs"] in (["4"], "4")  # AppTest shows a one-value list as its value


def test_videos_default_to_the_newest_runs_with_videos(lab):
    populated(lab)
    at = open_page("videos")
    assert not at.exception and at.multiselect(key="videos_runs").value == [4, 3]


def test_results_page_tabulates_and_exports(lab):
    populated(lab)
    at = open_page("results")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["method"]) == [
        "Teacher (reference)",
        "Student init",
        "Offline SFT",
        "OPD (reverse KL)",
        "OPD (forward KL)",
    ]
    assert table["object"].iloc[0] == "90.0" and table["object"].iloc[1] == "0.0"
    assert table["object"].iloc[3] == "80.0"  # seed 1 is still running: only seed 0 counts
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download Markdown", "Download LaTeX"]


def test_demo_sizes_follow_the_quick_study_preset():
    from app.demo import QUICK_SIZES

    for name in ("steps", "batch_tasks", "group_size", "eval_every", "eval_init_states"):
        assert QUICK_SIZES[name] == getattr(QUICK, name), name


def test_results_page_lays_a_queued_study_out_as_table_2(lab):
    from worker.study_queue import study_tags

    populated(lab)  # runs outside the study stay out of its table
    teachers = {}
    for suite, seen in (("object", 0.9), ("long", 0.6)):
        teacher = lab.add_run(config=config(pipeline="sft", suite=suite, name=f"teacher-{suite}"))
        lab.checkpoint_rows[teacher.id] = [
            Checkpoint(teacher.id, 100, f"runs/{teacher.id}/checkpoints/step_100", summary(seen))
        ]
        teachers[suite] = lab.artifact_path(f"runs/{teacher.id}/checkpoints/step_100")
    for suite, method, seed, successes in (
        ("object", "reverse_kl", 0, {0: 0.2, 2: 0.7}),
        ("object", "reverse_kl", 1, {0: 0.2, 2: 0.8}),
        ("object", "grpo", 0, {0: 0.2, 2: 0.5, 4: 0.9}),  # extended past its Table 2 step (2) to 4
        ("long", "reverse_kl", 0, {0: 0.1, 2: 0.4}),
    ):
        run = lab.add_run(
            config=config(
                suite=suite,
                seed=seed,
                teacher_checkpoint=teachers[suite],
                student_checkpoint=f"/assets/{suite}/student",
                pipeline="grpo" if method == "grpo" else "opd",
            ),
            tags=study_tags("mini", method, 2),
            step=max(successes),
            total_steps=max(successes),
        )
        lab.checkpoint_rows[run.id] = [
            Checkpoint(run.id, s, f"runs/{run.id}/checkpoints/step_{s}", summary(v)) for s, v in successes.items()
        ]
    at = open_page("results")
    assert not at.exception
    assert at.selectbox(key="results_study").value == "mini"
    table = at.dataframe[0].value
    assert list(table["method"]) == [
        "Teacher",
        "Student init (1 demo/task)",
        "Distill (reverse KL)",
        "GRPO (sparse reward)",
    ]
    assert list(table["object"]) == ["90.0", "20.0", "75.0 ± 7.1", "50.0"]
    assert list(table["long"]) == ["60.0", "10.0", "40.0", ""]
    assert list(table["avg."]) == ["75.0", "15.0", "57.5", ""]
    at.selectbox(key="results_study").set_value("").run()
    assert "Offline SFT" in list(at.dataframe[0].value["method"]), "the runs grouped by settings, as before"
