"""The Compare page's data + figure build (app.compare), against the in-memory API."""

import csv
import io
from dataclasses import replace

import numpy as np

from app.compare import build_view, runs_csv, teacher_references
from test_app_fakes import Checkpoint, FakeApi, config, series, summary


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
    assert [g.legend for g in view.groups] == ["OPD (reverse KL) (2 seeds)", "OPD (hard CE)"]
    success = view.figures[0][1]
    assert view.figures[0][0] == "train/success"
    mean = [t for t in success.data if t.name == "OPD (reverse KL) (2 seeds)" and t.fill is None][-1]
    assert list(mean.x) == [2.0 * s for s in range(1, 11)]  # wall time, not steps
    # the hard-CE run has no metrics: no trace, no error
    assert all(t.name != "OPD (hard CE)" for t in success.data)
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
