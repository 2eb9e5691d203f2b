"""The Runs table rows and the paper-style results table (Table 2) with its exports."""

import csv
import io
from datetime import timedelta

from app.references import checkpoint_summaries, teacher_success
from app.results_table import latex_escape, results_table
from app.runs_table import format_duration, run_rows, status_text
from test_app_fakes import T0, Checkpoint, Run, config, summary


def test_run_rows_show_status_method_settings_latest_numbers_and_duration():
    runs = [
        Run(
            1,
            name="a",
            status="running",
            step=5,
            total_steps=20,
            progress=0.25,
            finished_at=None,
            config=config(group_size=4),
            sweep_id=3,
            tags=["x", "y"],
        ),
        Run(2, name="b", status="failed", error="config field 'lr': bad\nmore", config=config(pipeline="grpo")),
        Run(3, name="c", status="queued", started_at=None, finished_at=None, config=config()),
    ]
    latest = {1: {"train/success": (5, 0.5), "train/entropy": (5, 2.5)}}
    rows = run_rows(runs, latest, {3: "ablation"}, now=T0 + timedelta(seconds=75))
    assert rows[0]["status"] == "running 5/20" and rows[0]["progress"] == 0.25
    assert rows[0]["method"] == "OPD (reverse KL)" and "G=4" in rows[0]["settings"]
    assert rows[0]["train success"] == 0.5 and rows[0]["entropy"] == 2.5 and rows[0]["seen success"] is None
    assert rows[0]["duration"] == "1m 15s" and rows[0]["sweep"] == "ablation" and rows[0]["tags"] == "x, y"
    assert rows[1]["status"] == "failed: config field 'lr': bad" and rows[1]["duration"] == "3m 00s"
    assert rows[2]["duration"] == "" and rows[2]["status"] == "queued"


def test_status_text_of_each_status():
    assert status_text(Run(1, status="crashed")) == "crashed"
    assert status_text(Run(1, status="cancelled")) == "cancelled"


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3725)] == ["", "5s", "1m 05s", "1h 02m"]


def _table_fixture():
    teacher_run = Run(10, config=config(pipeline="sft", suite="object"), out_dir="runs/10")
    runs = []
    checkpoints = {
        10: [
            Checkpoint(
                10,
                100,
                "runs/10/checkpoints/step_100",
                summary(0.9, {"object/a": 1.0, "object/b": 0.9, "pretrain/x": 0.2}),
            )
        ]
    }
    for run_id, (objective, seed, final) in enumerate(
        [("reverse_kl", 0, 0.9), ("reverse_kl", 1, 0.8), ("forward_kl", 0, 0.6)], start=1
    ):
        runs.append(
            Run(
                run_id,
                config=config(
                    objective=objective,
                    seed=seed,
                    suite="object",
                    tasks=["object/a", "object/b"],
                    teacher_checkpoint="/data/runs/10/checkpoints/step_100",
                ),
            )
        )
        checkpoints[run_id] = [Checkpoint(run_id, 0, "c0", summary(0.4)), Checkpoint(run_id, 30, "c", summary(final))]
    runs.append(Run(4, config=config(objective="reverse_kl", suite="goal", teacher_checkpoint="/elsewhere")))
    checkpoints[4] = [Checkpoint(4, 30, "c", summary(0.7))]
    summaries = checkpoint_summaries([teacher_run], checkpoints, lambda rel: f"/data/{rel}")
    return runs, checkpoints, summaries


def test_teacher_success_is_measured_on_the_runs_seen_tasks():
    runs, _, summaries = _table_fixture()
    assert teacher_success(runs[0].config, summaries) == 0.95  # mean of object/a and object/b, not 0.9
    assert teacher_success(runs[3].config, summaries) is None  # teacher not trained in the lab


def test_results_table_rows_cells_and_average():
    runs, checkpoints, summaries = _table_fixture()
    table = results_table(runs, checkpoints, summaries)
    assert table.suites == ["object", "goal"]
    labels = [row.label for row in table.rows]
    assert labels == ["Teacher (reference)", "Student init", "OPD (reverse KL)", "OPD (forward KL)"]
    reverse = table.rows[2]
    assert reverse.cells["object"].n == 2 and abs(reverse.cells["object"].mean - 0.85) < 1e-9
    assert reverse.cells["goal"].n == 1
    assert abs(table.average(reverse) - (0.85 + 0.7) / 2) < 1e-9
    assert table.average(table.rows[3]) is None  # forward KL has no goal run: no average
    display = table.display_rows()
    assert display[2]["object"] == "85.0 ± 7.1" and display[2]["goal"] == "70.0" and display[3]["goal"] == ""


def test_results_table_exports_csv_and_markdown():
    runs, checkpoints, summaries = _table_fixture()
    table = results_table(runs, checkpoints, summaries)
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert rows[2]["method"] == "OPD (reverse KL)" and rows[2]["object_mean"] == "85.00"
    assert rows[2]["object_n"] == "2" and rows[0]["kind"] == "reference"
    markdown = table.to_markdown()
    assert markdown.splitlines()[0] == "| Method | Object | Goal | Avg. |"
    assert "| OPD (reverse KL) | 85.0 ± 7.1 | 70.0 | 77.5 |" in markdown
    assert "| OPD (forward KL) | 60.0 | – | – |" in markdown


def test_results_table_exports_latex_with_the_references_ruled_off():
    runs, checkpoints, summaries = _table_fixture()
    latex = results_table(runs, checkpoints, summaries).to_latex()
    lines = latex.splitlines()
    assert "\\begin{tabular}{lccc}" in lines and "Method & Object & Goal & Avg. \\\\" in lines
    assert lines.index("Student init & 40.0 & -- & -- \\\\") + 1 == lines.index("\\midrule", 6)
    assert "OPD (reverse KL) & 85.0 $\\pm$ 7.1 & 70.0 & 77.5 \\\\" in lines
    assert latex_escape("g_2 #3 50% & {x}") == "g\\_2 \\#3 50\\% \\& \\{x\\}"


def test_the_shipped_teacher_is_a_reference_from_its_recorded_evaluation():
    """Not trained in the lab: its meta.json's evaluation gives the Compare line and the Results row."""
    from app.checkpoints import shipped_root
    from app.references import reference_summaries, teacher_references
    from test_app_fakes import FakeApi

    teacher = str(shipped_root() / "object" / "teacher")
    lab = FakeApi()
    run = lab.add_run(
        config=config(suite="object", tasks=["object/pick_red_block_into_basket"], teacher_checkpoint=teacher)
    )
    lab.checkpoint_rows[run.id] = [Checkpoint(run.id, 20, "c", summary(0.7))]
    other = lab.add_run(config=config(suite="object", teacher_checkpoint="/nowhere/teacher"))
    summaries = reference_summaries(lab, [run, other], [run, other])
    assert list(summaries) == [teacher] and summaries[teacher][0] == "teacher (teacher-object)"
    assert teacher_references(lab, [run, other], [run, other]) == [("teacher (teacher-object)", 1.0)]
    table = results_table([run], lab.checkpoint_rows, {path: s for path, (_, s) in summaries.items()})
    assert [(row.label, row.cells["object"].mean) for row in table.rows] == [
        ("Teacher (reference)", 1.0),
        ("OPD (reverse KL)", 0.7),
    ]


def test_a_teacher_without_a_recorded_evaluation_has_no_reference(tmp_path):
    from app.references import recorded_evaluation

    (tmp_path / "meta.json").write_text('{"policy": {}, "step": 3, "extra": {"eval": {}}}')
    assert recorded_evaluation(str(tmp_path)) is None and recorded_evaluation(str(tmp_path / "missing")) is None
