"""`opd reproduce --queue`: a miniature study executed by two real `opd worker` processes on the embedded default
(SQLite + filesystem broker), its summary and report built from the store.

The long suite from its shipped teacher and 1-demo student (as in test_study_suites): 2 steps of reverse KL do not
reach 90% of the teacher, so GRPO is extended through the queue (api.extend) to its cap of 3 x 2 = 6 steps in two
rounds of 2, each a new attempt of the same stored run. Distill then GRPO starts from the stored reverse-KL
checkpoint at step 1 (the latest switch: three evaluations never fit in one step).
"""

import json
import shutil
from pathlib import Path

import pytest

from conftest import _fast_settings
from lab_workers import LabWorkers
from opd_core.study import run_study
from opd_core.study.plan import plan_runs
from study_minis import SHIPPED_RUNS, mini_preset

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets/tabletop"
MINI = mini_preset(
    "mini-queue",
    seeds=2,
    extend_chunk=2,
    sft_eval_every=2,
    ablation_group_sizes=(),
    common_overrides=SHIPPED_RUNS,
    methods=("reverse_kl", "grpo", "opd_then_grpo"),
    extend_methods=("grpo",),
)
SUITES = ["long"]


def _assets(folder: Path) -> Path:
    shutil.copytree(SHIPPED / "base", folder / "base")
    for role in ("teacher", "student"):
        shutil.copytree(SHIPPED / "long" / role, folder / "long" / role)
    return folder


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    if not (SHIPPED / "long/teacher/meta.json").is_file():
        pytest.skip("no shipped long-suite teacher")
    from worker import api
    from worker.study_queue import run_queued_study

    root = tmp_path_factory.mktemp("queued")
    settings = _fast_settings(root / "data")
    api.configure(settings)
    workers = LabWorkers(root)
    failed = True
    try:
        started = [workers.start(settings, concurrency=1, wait=False) for _ in range(2)]
        for worker in started:  # both start at once; a loaded machine takes a while to import Celery and torch
            worker.wait_ready(timeout=240)
        assets = _assets(root / "assets")
        out = root / "study"
        summary = run_queued_study(out, MINI, suites=SUITES, assets=assets, progress=False, poll_seconds=0.3, log=print)
        local = run_study(root / "local", MINI, suites=SUITES, assets=assets, progress=False, log=lambda *_: None)
        failed = False
        yield api, out, summary, root / "local", local
    finally:
        workers.stop_all(failed)
        api.configure(None)


def test_every_run_went_through_the_queue_once_as_one_sweep_per_method(queued):
    api, out, summary, _, _ = queued
    specs = plan_runs(MINI, SUITES, list(range(MINI.seeds)))
    ledger = json.loads((out / "queue.json").read_text())
    assert sorted(ledger) == sorted(f"{s.suite}/{s.run_id}" for s in specs)
    runs = {run.id: run for run in api.list_runs()}
    assert sorted(runs) == sorted(ledger.values()), "one stored run per study run, nothing else"
    sweeps = {sweep.name: sweep for sweep in api.list_sweeps()}
    assert set(sweeps) == {f"study {out.name} long/{m}" for m in MINI.methods}
    for key, run_id in ledger.items():
        run = runs[run_id]
        method = key.split("/")[1].rsplit("_seed", 1)[0]
        assert run.status == "finished" and run.sweep_id == sweeps[f"study {out.name} long/{method}"].id
        started = [event for event in api.run_events(run_id) if event.kind == "running"]
        assert len(started) == run.attempt, f"{key}: each attempt claimed once"
        steps = api.metrics([run_id], ["train/success"])[run_id]["train/success"].steps.tolist()
        assert steps == list(range(1, run.total_steps + 1)), f"{key}: every step trained exactly once"
        if method == "grpo":  # extended twice (2 -> 4 -> 6): the same run continued, never restarted
            assert (run.attempt, run.total_steps) == (3, 3 * MINI.steps)
        elif method == "opd_then_grpo":  # GRPO for the step after the switch, from the stored distilled student
            distilled = runs[ledger[key.replace("opd_then_grpo", "reverse_kl")]]
            assert (run.attempt, run.total_steps, run.config["pipeline"]) == (1, MINI.steps - 1, "grpo")
            assert run.config["student_checkpoint"] == str(api.artifact_path(f"{distilled.out_dir}/checkpoints/step_1"))
        else:
            assert (run.attempt, run.total_steps) == (1, MINI.steps)
    assert summary["runs_run_now"] == len(specs) and summary["extension_rounds_run_now"] == 2 * MINI.seeds
    assert summary["execution"]["mode"] == "queue" and summary["execution"]["runs"] == ledger


def _shape(value):
    """The structure of a summary: keys all the way down, lists by their length."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [len(value)]
    return type(value).__name__ if value is not None else None


def test_the_summary_and_report_from_the_store_have_the_local_structure(queued):
    _, out, summary, local_out, local = queued
    skip = ("execution", "wall_seconds", "finished_at")
    queued_shape = _shape({k: v for k, v in summary.items() if k not in skip})
    local_shape = _shape({k: v for k, v in local.items() if k not in skip})
    for suite in SUITES:  # run folders are named by where the runs lived; the rest must agree
        for method in summary["results"][suite]["methods"]:
            assert summary["results"][suite]["methods"][method]["runs"][0].endswith(
                "/runs/" + str(summary["execution"]["runs"][f"{suite}/{method}_seed0"])
            )
    assert json.dumps(queued_shape, sort_keys=True, default=str) == json.dumps(local_shape, sort_keys=True, default=str)

    def headings(report: str) -> list[str]:
        return [line for line in report.splitlines() if line.startswith("#") or line.startswith("| Method")]

    assert headings((out / "report.md").read_text()) == headings((local_out / "report.md").read_text())
    grpo = summary["results"]["long"]["methods"]["grpo"]
    assert grpo["steps_to"]["90"]["censored_at"] == 3 * MINI.steps and grpo["eval_curves"]["step"][-1] == 6
    assert sorted(summary["plots"]["long"]) == sorted(local["plots"]["long"])
    assert all((out / path).is_file() for path in summary["plots"]["long"].values())


def test_running_it_again_submits_nothing(queued):
    from worker.study_queue import run_queued_study

    api, out, _, _, _ = queued
    before = ([run.id for run in api.list_runs()], [s.id for s in api.list_sweeps()])
    sent = []
    original = api.launch_group
    api.launch_group = lambda *a, **kw: sent.append(a) or original(*a, **kw)
    try:
        again = run_queued_study(
            out,
            MINI,
            suites=SUITES,
            assets=out.parent / "assets",
            progress=False,
            poll_seconds=0.3,
            log=lambda *_: None,
        )
    finally:
        api.launch_group = original
    assert sent == [] and again["runs_run_now"] == 0 and again["extension_rounds_run_now"] == 0
    assert ([run.id for run in api.list_runs()], [s.id for s in api.list_sweeps()]) == before
    assert all(run.status == "finished" for run in api.list_runs())


def test_the_lab_cli_adds_queue_to_reproduce_and_refuses_jobs_with_it(capsys):
    from opd_core.cli import build_parser
    from worker.cli import add_lab_commands, main

    parser, subparsers = build_parser()
    add_lab_commands(subparsers)
    args = parser.parse_args(["reproduce", "--out", "x", "--quick", "--queue", "--poll-seconds", "1"])
    assert args.queue and args.poll_seconds == 1.0
    assert not parser.parse_args(["reproduce", "--out", "x"]).queue
    assert main(["reproduce", "--out", "x", "--queue", "--jobs", "2"]) == 2
    assert "drop --jobs with --queue" in capsys.readouterr().err


def test_extend_refuses_a_run_not_ended_a_length_not_longer_and_other_fields(tmp_path):
    """No worker: the launched run stays queued (its message waits in the filesystem broker)."""
    from tinyrun import tiny_config
    from worker import api

    api.configure(_fast_settings(tmp_path / "data"))
    try:
        run_id = api.launch(tiny_config(Path("set-by-the-lab"), pipeline="grpo", steps=2).to_dict())
        with pytest.raises(api.RunStateError, match="only an ended run"):
            api.extend(run_id, steps=4)
        with pytest.raises(api.RunStateError, match="needs more"):
            api.extend(run_id, steps=2)
        with pytest.raises(api.ConfigError, match="only steps and grpo_steps"):
            api.extend(run_id, lr=1.0)
        run = api.get_run(run_id)
        assert (run.status, run.total_steps, run.attempt, run.config["steps"]) == ("queued", 2, 1, 2)
    finally:
        api.configure(None)
