"""A miniature of `opd reproduce`: tiny policies, 2 tasks, 2 steps per method, assets made by the study itself.

Checks the study's plumbing (every method ran from the same student, summary.json's structure, report and plots,
resuming a finished study); the paper's claims are measured by the command, never asserted here.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from opd_core.config import RunConfig
from opd_core.study import METHODS, run_study
from opd_core.study.assets import AssetStore
from opd_core.study.jobs import StudyError, check_same_settings, execute_all
from opd_core.study.plan import plan_runs, seen_tasks
from study_minis import mini_preset, tiny_assets, tiny_runs

MINI = mini_preset(
    "mini",
    sft_eval_every=1,
    ablation_trajectories=4,
    ablation_group_sizes=(2, 4),
    held_out_tasks=2,
    pretrain_tasks=2,
    objective_lrs=(1e-3,),
    objective_lr_methods=("forward_kl",),
    max_episode_steps=8,
    common_overrides=tiny_runs(max_episode_steps=8),
    asset_overrides=tiny_assets(3, student={"steps": 2}),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = run_study(out, MINI, progress=False, log=lambda *_: None)
    return out, summary


def test_every_method_ran_from_the_same_student_and_batch(study):
    out, summary = study
    methods = summary["results"]["object"]["methods"]
    # G=2 at 4 trajectories is the main batch: not run twice
    assert set(methods) == {*METHODS, "reverse_kl_G4", "forward_kl_lr0.001"}
    assert summary["results"]["object"]["ablation"]["group_sizes"] == {"2": "reverse_kl", "4": "reverse_kl_G4"}
    students = set()
    for spec in plan_runs(MINI, ["object"], [0]):
        folder = spec.folder(out)
        config = RunConfig.load(folder / "config.yaml")
        assert (folder / f"checkpoints/step_{config.total_steps}/meta.json").is_file(), folder
        if spec.method == "opd_then_grpo":  # GRPO from the reverse-KL checkpoint where distillation stopped
            assert config.pipeline == "grpo" and config.total_steps == MINI.steps - 1
            assert config.student_checkpoint == str(out.resolve() / "runs/object/reverse_kl_seed0/checkpoints/step_1")
        else:
            students.add(config.student_checkpoint)
        if spec.method not in ("sft", "reverse_kl_G4"):
            assert (methods[spec.method]["batch_tasks"], methods[spec.method]["group_size"]) == (2, 2)
    assert len(students) == 1
    assert methods["reverse_kl_G4"]["batch_tasks"] == 1 and methods["reverse_kl_G4"]["group_size"] == 4
    assert methods["opd_then_grpo"]["grpo_from_step"] == [1]
    assert methods["forward_kl_lr0.001"]["lr"] == 1e-3 and methods["forward_kl"]["lr"] != 1e-3
    assert RunConfig.load(out / "runs/object/forward_kl_lr0.001_seed0/config.yaml").lr == 1e-3


def test_distill_then_grpo_is_reported_with_its_rule_and_gain(study):
    out, summary = study
    block = summary["results"]["object"]["distill_then_grpo"]
    assert block["switch_steps"] == [1] and block["plateaued"] == [False]  # 3 evaluations never fit in 1 step
    assert "not improved by more than 0.02 over the last 3 evaluations" in block["rule"]
    rkl = summary["results"]["object"]["methods"]["reverse_kl"]["eval_curves"]["seen_success"]["mean"]
    stitched = summary["results"]["object"]["methods"]["opd_then_grpo"]["eval_curves"]["seen_success"]["mean"]
    assert block["at_switch"]["values"] == [rkl[1]] and stitched[:2] == rkl[:2], "reverse KL's curve up to the switch"
    assert block["gain"]["values"] == [pytest.approx(stitched[2] - rkl[1])]
    report = (out / "report.md").read_text()
    assert "## Distill then GRPO" in report and "### Objective ablation at two learning rates" in report
    assert any(c["claim"].startswith("Distill then GRPO") for c in summary["results"]["object"]["claims"])
    assert any("(lr 0.001)" in c["claim"] for c in summary["results"]["object"]["claims"])


def test_the_plateau_rule_picks_the_first_flat_window():
    from opd_core.study.handoff import switch_step

    preset = MINI.with_changes(steps=50, eval_every=5, distill_steps_before_grpo=35, plateau_evals=2)

    def run(values):
        return {"folder": "x", "eval_steps": list(range(0, 5 * len(values), 5)), "eval": {"seen_success": values}}

    # still rising by more than 0.02 per 2 evaluations at step 35: GRPO takes over there, the latest step
    assert switch_step(preset, run([0.1, 0.5, 0.8, 0.85, 0.86, 0.9, 0.93, 0.96])) == (35, False)
    # best so far 0.8 at step 10, 0.81 at step 20 (0.79 at 20 does not count): flat by 0.01 over 2 evaluations
    assert switch_step(preset, run([0.1, 0.5, 0.8, 0.81, 0.79, 0.82, 0.9, 0.9])) == (20, True)
    assert switch_step(preset.with_changes(plateau_gain=0.1), run([0.1, 0.5, 0.8, 0.85, 0.86, 0.9])) == (20, True)


def test_summary_structure(study):
    out, summary = study
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["preset"]["name"] == "mini" and on_disk["seeds"] == [0]
    result = on_disk["results"]["object"]
    assert set(result["reference"]) == {"base", "teacher", "student_init"}
    for row in result["reference"].values():
        assert {"seen_success", "unseen_success", "pretrain_success", "sampled_success", "entropy"} <= set(row)
    assert len(result["tasks"]["seen"]) == 2 and len(result["tasks"]["held_out"]) == 2
    assert len(result["tasks"]["retention"]) == 1
    for name, method in result["methods"].items():
        assert {"curves", "eval_curves", "steps_to_90", "final", "seconds_per_step", "runs"} <= set(method), name
        assert set(method["final"]) >= {"seen_success", "unseen_success", "pretrain_success", "entropy"}
        assert method["final"]["seen_success"]["n"] == 1 and method["seconds_per_step"]["mean"] > 0
        assert method["eval_curves"]["step"][0] == 0 and method["eval_curves"]["step"][-1] == method["total_steps"]
        assert {"eval", "train", "censored_at"} <= set(method["steps_to_90"])
        if name != "sft":
            assert method["curves"]["step"] == [1, 2]
            assert len(method["curves"]["train_success"]["mean"]) == 2
            assert len(method["curves"]["entropy"]["mean"]) == 2
    verdicts = ("holds", "does not hold", "undetermined", "not measured", "reported")
    assert all(c["verdict"] in verdicts for c in result["claims"])


@pytest.mark.parametrize(
    "rkl_steps, grpo_steps, verdict",
    [
        ([10, 15, 15], [None, None, None], "holds"),  # 15 <= 50/3 even with GRPO's bound
        ([25, 35, 20], [None, None, None], "undetermined"),  # GRPO never reached in 50: its number is only >= 50
        ([25, 35, 20], [60, 90, None], "undetermined"),
        ([25, 35, 20], [60, 90, 100], "does not hold"),  # every GRPO seed reached: 35 > 83.3/3
        ([10, None, 15], [60, 90, 100], "does not hold"),  # a reverse-KL seed never reached
    ],
)
def test_the_steps_claim_is_open_while_grpo_is_censored(rkl_steps, grpo_steps, verdict):
    from opd_core.study.analysis import claims

    def reach(values, censored_at):
        reached = [v for v in values if v is not None]
        summary = {
            "values": values,
            "reached": len(reached),
            "of": len(values),
            "max": max(reached, default=None),
            "mean": sum(reached) / len(reached) if reached else None,
            "defined": True,
        }
        return {"eval": summary, "train": summary, "censored_at": censored_at}

    result = {
        "reference": {"teacher": {"seen_success": 1.0}, "student_init": {"seen_success": 0.6}},
        "methods": {
            "reverse_kl": {"steps_to_90": reach(rkl_steps, 50), "final": {}},
            "grpo": {"steps_to_90": reach(grpo_steps, 50 if None in grpo_steps else 120)},
        },
        "ablation": {"group_sizes": {}},
    }
    found = [c for c in claims(result) if "third of GRPO" in c["claim"]]
    assert [c["verdict"] for c in found] == [verdict, verdict]
    if None in rkl_steps:  # reverse KL's own run length, not GRPO's extended one
        assert all("within its 50 steps" in c["measured"] for c in found)


def test_a_small_nonzero_rate_is_not_printed_as_zero():
    from opd_core.study.analysis import format_rate

    assert [format_rate(v) for v in (0.0, 0.0016, 0.25, 1.0)] == ["0.00", "0.002", "0.25", "1.00"]


def test_report_and_plots_exist(study):
    out, summary = study
    report = (out / "report.md").read_text()
    assert "Table 2" in report and "Figure 2" in report and "Steps to reach 90%" in report and "claims" in report
    for kind in ("success", "entropy", "tradeoff", "ablation"):
        relative = summary["plots"]["object"][kind]
        assert f"]({relative})" in report
        assert (out / relative).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_invocation_reuses_everything(study):
    out, _ = study
    again = run_study(out, MINI, progress=False, log=lambda *_: None)
    assert again["runs_run_now"] == 0 and again["runs_reused"] == len(plan_runs(MINI, ["object"], [0]))


def test_the_runs_training_time_is_summed_from_their_own_clocks_whatever_invocation_made_them(study):
    out, summary = study
    compute = summary["compute"]
    assert compute["runs"] == len(plan_runs(MINI, ["object"], [0])) and compute["runs_without_cpu_seconds"] == 0
    assert compute["run_cpu_seconds"] > 0 and compute["run_wall_seconds"] > 0
    assert "CPU-hours of the training processes" in (out / "report.md").read_text()
    again = run_study(out, MINI, progress=False, log=lambda *_: None)  # trains nothing, counts the same runs
    assert again["compute"] == compute


def _kept_in_git(out, to):
    """The study folder as a clone of a repository that keeps it sees it: the runs' checkpoints left out (the
    assets the runs start from stay where they are)."""
    shutil.copytree(out, to, ignore=lambda folder, names: ["checkpoints"] if "/runs/" in folder else [])
    return to


def _training_rows(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def _table(summary):
    methods = summary["results"]["object"]["methods"]
    return {key: method["eval_curves"]["seen_success"]["mean"] for key, method in methods.items()}


def test_a_study_kept_without_weights_is_read_from_its_metrics(study, tmp_path, monkeypatch):
    from opd_core.study import references

    out, summary = study
    kept = _kept_in_git(out, tmp_path / "kept")
    # its assets now lie elsewhere, with the same content: the cached reference rows still hold
    monkeypatch.setattr(references, "measure", lambda *a, **k: pytest.fail("reference rows measured again"))
    assert not list((kept / "runs").rglob("meta.json"))
    again = run_study(kept, MINI, progress=False, log=lambda *_: None)
    assert again["runs_run_now"] == 0 and again["extension_rounds_run_now"] == 0
    assert _table(again) == _table(summary)
    assert not list((kept / "runs").rglob("meta.json")), "nothing was made again"


def test_a_checkpoint_retrained_in_place_is_measured_again(study, tmp_path):
    from opd_core.study.references import fingerprint

    out, _ = study
    copy = shutil.copytree(out / "assets/base", tmp_path / "base")
    checkpoint = next(copy.glob("checkpoints/step_*"))
    original = next((out / "assets/base").glob(f"checkpoints/{checkpoint.name}"))
    assert fingerprint(checkpoint) == fingerprint(original)
    meta = checkpoint / "meta.json"
    meta.write_text(meta.read_text().replace('"step"', '"step" ', 1))
    assert fingerprint(checkpoint) != fingerprint(original)


def test_a_kept_study_remakes_a_checkpoint_a_new_run_needs_and_reruns_unfinished_ones(study, tmp_path):
    out, summary = study
    kept = _kept_in_git(out, tmp_path / "kept")
    shutil.rmtree(kept / "runs/object/opd_then_grpo_seed0")  # not run yet: it needs reverse KL's step-1 weights
    grpo = kept / "runs/object/grpo_seed0/checkpoints.jsonl"  # stopped after its first checkpoint
    grpo.write_text(grpo.read_text().splitlines()[0] + "\n")
    messages = []
    again = run_study(kept, MINI, progress=False, log=messages.append)
    assert again["runs_run_now"] == 2  # the handoff and the unfinished GRPO run
    assert any("kept without its weights: making it again for step 1" in m for m in messages)
    ended = [m for m in messages if " runs ended: " in m]  # a line a run made now, none for the reused ones
    assert len(ended) == 2 and any("object/grpo_seed0" in m for m in ended), ended
    assert any("object/opd_then_grpo_seed0" in m for m in ended), ended
    assert (kept / "runs/object/reverse_kl_seed0/checkpoints/step_1/meta.json").is_file()
    for run in ("reverse_kl_seed0", "grpo_seed0", "opd_then_grpo_seed0"):  # the same run made again
        assert _training_rows(kept / "runs/object" / run) == _training_rows(out / "runs/object" / run), run
    assert _table(again) == _table(summary)


def test_a_run_made_again_with_another_curve_says_so_and_its_new_metrics_are_kept(study, tmp_path):
    """As when the kept run was made on another CPU, whose floating point changed a sampled action: the run made
    again here replaces the kept metrics (which no longer match any weights), and the log says so."""
    out, summary = study
    kept = _kept_in_git(out, tmp_path / "kept")
    shutil.rmtree(kept / "runs/object/opd_then_grpo_seed0")
    metrics = kept / "runs/object/reverse_kl_seed0/metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    for row in rows:
        if "eval/seen_success" in row:
            row["eval/seen_success"] = 0.123
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    messages = []
    again = run_study(kept, MINI, progress=False, log=messages.append)
    assert any("reverse_kl_seed0 made again differs from the kept run" in m for m in messages), messages
    assert _training_rows(kept / "runs/object/reverse_kl_seed0") == _training_rows(out / "runs/object/reverse_kl_seed0")
    assert _table(again) == _table(summary)


def test_the_handoff_reads_its_switch_again_from_a_reverse_kl_run_made_again(tmp_path):
    """The switch step comes from the reverse-KL curve; when getting the checkpoint made that run again with
    another curve, the handoff starts where the new curve plateaus, from that step's checkpoint."""
    from opd_core.study.runner import _handoff_config, distillation_of

    spec = next(s for s in plan_runs(MINI, ["object"], [0]) if s.method == "opd_then_grpo")
    configs = {distillation_of(spec): SimpleNamespace(out_dir=str(tmp_path / "reverse_kl_seed0"))}
    switch = {"step": 35}  # read off the kept curve

    class RemakingExecutor:
        def __init__(self):
            self.asked: list[int] = []

        def finished(self, spec, config):
            return False

        def checkpoint(self, spec, config, step):
            self.asked.append(step)
            switch["step"] = 20  # made again, the run plateaus earlier
            return tmp_path / f"step_{step}"

    executor = RemakingExecutor()
    config = _handoff_config(spec, lambda s: switch["step"], configs, lambda s, path, step: (path, step), executor)
    assert config == (tmp_path / "step_20", 20)
    assert executor.asked == [35, 20]


def test_parallel_jobs_run_every_method_in_its_own_process(study, tmp_path, spawnable_main):
    out, summary = study
    parallel = run_study(tmp_path, MINI, assets=out / "assets", jobs=2, progress=False, log=lambda *_: None)
    specs = plan_runs(MINI, ["object"], [0])
    assert parallel["runs_run_now"] == len(specs)
    assert set(parallel["results"]["object"]["methods"]) == set(summary["results"]["object"]["methods"])
    for spec in specs:
        length = RunConfig.load(spec.folder(tmp_path) / "config.yaml").total_steps
        assert (spec.folder(tmp_path) / f"checkpoints/step_{length}/meta.json").is_file()


def test_failed_parallel_runs_are_named_after_the_others_end(study, tmp_path, spawnable_main):
    from opd_core.config import RunConfig

    out, _ = study
    good = RunConfig.load(out / "runs/object/grpo_seed0/config.yaml").replace(out_dir=str(tmp_path / "good"))
    missing = good.replace(out_dir=str(tmp_path / "missing"), student_checkpoint=str(tmp_path / "nowhere"))
    invalid = good.replace(out_dir=str(tmp_path / "invalid"), lr=-1.0)  # a ConfigError, raised in the child
    with pytest.raises(StudyError, match=r"2 run\(s\) failed") as failed:
        execute_all([missing, invalid, good], jobs=2)
    message = str(failed.value)
    assert "missing" in message and "nowhere" in message
    assert "invalid: ConfigError: config field 'lr'" in message
    assert (tmp_path / f"good/checkpoints/step_{good.total_steps}/meta.json").is_file()


def test_a_run_folder_made_with_other_settings_is_refused(study):
    out, summary = study
    from opd_core.config import RunConfig

    folder = out / "runs/object/grpo_seed0"
    config = RunConfig.load(folder / "config.yaml")
    check_same_settings(config, folder)
    with pytest.raises(StudyError, match="other settings"):
        check_same_settings(config.replace(lr=config.lr * 2), folder)


def test_assets_are_found_in_an_assets_folder_and_unfinished_ones_refused(study, tmp_path):
    out, _ = study
    store = AssetStore(tmp_path / "assets", MINI, found_in=out / "assets")
    found = store.suite("object", seen_tasks(MINI, "object"))
    assert {getattr(found, role).source for role in ("base", "teacher", "student")} == {"found"}
    assert found.teacher.path == out / "assets/object/teacher/checkpoints/step_3"
    assert store.demos("object", seen_tasks(MINI, "object"), 2) == out / "assets/demos/object"
    assert not (tmp_path / "assets").exists(), "nothing is built when everything is found"

    partial = tmp_path / "runs/pretrain_base/checkpoints/step_1"
    shutil.copytree(out / "assets/base/checkpoints/step_3", partial)
    meta = json.loads((partial / "meta.json").read_text())
    (partial / "meta.json").write_text(json.dumps({**meta, "step": 1}))
    with pytest.raises(StudyError, match="not a finished run"):
        AssetStore(tmp_path / "other", MINI, found_in=tmp_path / "runs").base()
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match="no finished base"):
        AssetStore(tmp_path / "other", MINI, found_in=tmp_path / "empty").base()


def test_cli_parses():
    from opd_core.reproduce import add_reproduce_command

    parser = argparse.ArgumentParser()
    add_reproduce_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reproduce", "--out", "x", "--quick", "--seeds", "2", "--assets", "runs"])
    assert args.quick and args.seeds == 2 and args.assets == "runs" and args.suites == "object"
    assert not args.finished_only and parser.parse_args(["reproduce", "--out", "x", "--finished-only"]).finished_only


ORPHAN_SCRIPT = """
import os, sys, time
from multiprocessing import get_context
from opd_core.study import jobs

def run_process(pid_file):
    jobs._start_child(1)  # what the study's pool runs first in every run process
    open(pid_file, "w").write(str(os.getpid()))
    time.sleep(120)  # a run that would go on training

if __name__ == "__main__":
    get_context("spawn").Process(target=run_process, args=(sys.argv[1],)).start()
    while not (os.path.exists(sys.argv[1]) and open(sys.argv[1]).read()):
        time.sleep(0.05)
    os._exit(0)  # the study's process dies without a word to its children (SIGKILL, or SIGTERM to it alone)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_run_process_exits_when_the_study_process_dies(tmp_path):
    script, pid_file = tmp_path / "study.py", tmp_path / "child.pid"
    script.write_text(ORPHAN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(pid_file)], env=env, check=True, timeout=120)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 30  # a liveness bound: the watch looks every half second
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _running(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the orphaned run process went on after the study's process died"


def test_an_interim_report_covers_the_finished_units_and_trains_nothing(study, tmp_path):
    out, summary = study
    kept = _kept_in_git(out, tmp_path / "kept")
    two_seeds = MINI.with_changes(seeds=2)  # seed 1 has not run: its unit is left out
    interim = run_study(kept, two_seeds, finished_only=True, progress=False, log=lambda *_: None)
    assert interim["finished_units"] == {"covered": 1, "planned": 2} and interim["seeds"] == [0]
    assert interim["runs_run_now"] == 0 and not list((kept / "runs/object").glob("*_seed1"))
    assert _table(interim) == _table(summary)
    assert "**Interim report**" in (kept / "report.md").read_text()

    unfinished = kept / "runs/object/grpo_seed0/checkpoints.jsonl"
    unfinished.write_text("\n".join(unfinished.read_text().splitlines()[:-1]) + "\n")  # as if stopped mid-run
    with pytest.raises(StudyError, match="nothing to report"):
        run_study(kept, two_seeds, finished_only=True, progress=False, log=lambda *_: None)
