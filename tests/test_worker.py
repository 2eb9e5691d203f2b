"""The lab end to end, on both backends: real `opd worker` processes (Celery, prefork), a real broker, a real
database, and the real opd_core.train on tiny configs.

Timing knobs (tests/conftest.py): heartbeat 0.5 s, stale after 4 s, cancel flag read at most every 0.05 s.
"""

from __future__ import annotations

import re
import time

import pytest
import torch

from lab_runs import SLOW_STEPS, run_config, stored_steps, wait_until_ended
from opd_core.checkpoint import load_policy, load_training_state
from opd_core.config import ConfigError
from opd_core.sinks import read_metrics
from polling import wait_for


@pytest.mark.timeout(60)
def test_launch_refuses_an_invalid_config_naming_the_field_and_writes_nothing(lab, lab_settings):
    with pytest.raises(ConfigError, match="batch_tasks") as refused:
        lab.launch(run_config(batch_tasks=0))
    assert refused.value.field == "batch_tasks"
    with pytest.raises(ConfigError, match="no_such_field"):
        lab.launch({**run_config(), "no_such_field": 1})
    with pytest.raises(ConfigError, match="group_size"):  # one bad point refuses the whole sweep
        lab.launch_sweep(run_config(), {"seed": [0, 1], "group_size": [4, 1]}, "bad sweep")
    assert lab.list_runs() == [] and lab.list_sweeps() == []
    queue_folder = lab_settings.broker_dir / "queue"
    assert not queue_folder.exists() or not any(queue_folder.iterdir())


@pytest.mark.timeout(60)
def test_cuda_runs_go_to_the_gpu_queue_and_runs_keep_tags_and_notes(lab, lab_settings):
    gpu_run = lab.launch(run_config(device="cuda"))
    cpu_run = lab.launch(run_config(), tags=["a"])
    assert (lab.get_run(gpu_run).queue, lab.get_run(cpu_run).queue) == ("gpu", "cpu")
    assert queued_messages(lab_settings) == {"gpu": 1, "cpu": 1}

    lab.set_tags(cpu_run, ["baseline", "seed0", "baseline"])
    lab.set_notes(cpu_run, "first try")
    assert (lab.get_run(cpu_run).tags, lab.get_run(cpu_run).notes) == (["baseline", "seed0"], "first try")
    assert [r.id for r in lab.list_runs(tag="seed0")] == [cpu_run]
    assert [r.id for r in lab.list_runs(status="queued")] == [cpu_run, gpu_run]
    with pytest.raises(lab.RunNotFound):
        lab.set_notes(999_999, "x")


def queued_messages(lab_settings) -> dict[str, int]:
    if not lab_settings.broker_url:
        names = [path.name for path in (lab_settings.broker_dir / "queue").iterdir()]
        return {queue: sum(name.endswith(f".{queue}.msg") for name in names) for queue in ("cpu", "gpu")}
    import redis

    client = redis.Redis.from_url(lab_settings.broker_url)
    try:
        return {queue: client.llen(queue) for queue in ("cpu", "gpu")}
    finally:
        client.close()


@pytest.mark.timeout(180)
def test_a_run_finishes_with_its_artifacts_and_a_missing_teacher_fails_with_that_message(
    lab, lab_settings, start_worker
):
    start_worker(lab_settings)
    with pytest.raises(ConfigError) as refused:
        lab.launch(run_config(pipeline="opd", teacher_checkpoint="missing/teacher"))
    assert refused.value.field == "teacher_checkpoint" and "not found" in str(refused.value)
    assert lab.list_runs() == []
    broken = lab_settings.data_dir / "broken/teacher"  # there at launch, unreadable when the run starts
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text('{"format": "something-else"}')
    good = lab.launch(run_config(steps=4, eval_every=2, save_every=2), tags=["smoke"], notes="tiny")
    bad = lab.launch(run_config(pipeline="opd", teacher_checkpoint="broken/teacher"))

    run = wait_until_ended(lab, good, 120)
    assert (run.status, run.step, run.progress, run.error) == ("finished", 4, 1.0, None)
    assert run.tags == ["smoke"] and run.notes == "tiny" and run.worker_host
    assert stored_steps(lab, good, "train/success") == [1, 2, 3, 4]
    assert stored_steps(lab, good, "eval/seen_success") == [0, 2, 4]
    assert [c.step for c in lab.checkpoints(good)] == [0, 2, 4]
    assert all(lab.artifact_path(c.path).is_dir() for c in lab.checkpoints(good))
    videos = lab.videos(good, step=4)
    assert videos and all(lab.artifact_path(v.path).is_file() for v in videos)
    assert "train/success" in lab.metric_keys([good])
    assert lab.latest_metrics([good], ["train/success"])[good]["train/success"][0] == 4

    failed = wait_until_ended(lab, bad, 60)
    assert failed.status == "failed"
    assert failed.error == f"{broken}: unsupported checkpoint format 'something-else'"
    assert "CheckpointError" in failed.traceback

    run_folder = lab.artifact_path(run.out_dir)
    lab.delete(good)
    assert lab.get_run(good) is None and lab.metrics([good], ["train/success"]) == {} and not run_folder.exists()
    assert lab.checkpoints(good) == [] and lab.videos(good) == []


@pytest.mark.timeout(240)
def test_a_killed_worker_shows_the_run_crashed_and_resume_finishes_every_step_once(lab, lab_settings, start_worker):
    total = 20
    first = start_worker(lab_settings)
    run_id = lab.launch(run_config(steps=total, save_every=3, **SLOW_STEPS))
    wait_for(lambda: any(c.step >= 6 for c in lab.checkpoints(run_id)), 120, "a checkpoint at step 6")

    first.kill_hard()
    killed_at = time.time()
    second = start_worker(lab_settings, wait=False)  # starts up while the crash is being noticed
    crashed = wait_for(lambda: (run := lab.get_run(run_id)).status == "crashed" and run, 60, "the run to show crashed")
    assert time.time() - killed_at < 60
    assert [run.id for run in lab.list_runs(status="crashed")] == [run_id]
    assert crashed.step < total

    second.wait_ready()
    lab.resume(run_id)
    run = wait_until_ended(lab, run_id, 150)
    assert (run.status, run.attempt, run.step) == ("finished", 2, total)
    for key in ("train/success", "time/step_seconds", "time/env_steps"):
        assert stored_steps(lab, run_id, key) == list(range(1, total + 1)), key
    # Resumed, not restarted: steps up to the checkpoint kept the first attempt's points.
    early = lab.metrics([run_id], ["train/success"], with_wall_time=True)[run_id]["train/success"]
    assert early.wall_times[0] < killed_at
    assert "resume=True" in second.log_text()
    local_rows = read_metrics(lab.artifact_path(run.out_dir))  # the run folder's copy agrees
    assert [row["step"] for row in local_rows if "train/success" in row] == list(range(1, total + 1))


@pytest.mark.timeout(180)
def test_cancel_stops_a_run_within_one_step_and_its_checkpoint_loads(lab, lab_settings, start_worker):
    start_worker(lab_settings)
    run_id = lab.launch(run_config(steps=500, save_every=100, **SLOW_STEPS))
    out_dir = wait_for(
        lambda: (run := lab.get_run(run_id)).step >= 2 and lab.artifact_path(run.out_dir), 120, "two steps"
    )

    with pytest.raises(lab.RunStateError, match="running: cancel it first"):
        lab.delete(run_id)
    last_logged = read_metrics(out_dir)[-1]["step"]
    assert lab.cancel(run_id) == "running"
    run = wait_until_ended(lab, run_id, 30)

    assert run.status == "cancelled" and run.error is None
    # The step in flight when cancel was asked ends the run; one more only if it began between the two lines
    # above.
    assert last_logged <= run.step <= last_logged + 2
    first, *_, newest = lab.checkpoints(run_id)
    assert (first.step, newest.step) == (0, run.step)
    # The newest checkpoint is this run's policy at the step it stopped: its training state is there, and its
    # weights moved from the initial ones exactly if some GRPO update used a state (else they are the initial ones).
    newest_path = lab.artifact_path(newest.path)
    assert load_training_state(newest_path).step == run.step
    trained = dict(load_policy(newest_path).named_parameters())
    initial = dict(load_policy(lab.artifact_path(first.path)).named_parameters())
    assert trained.keys() == initial.keys()
    updated = [
        row["train/updated_state_fraction"]
        for row in read_metrics(out_dir)
        if "train/updated_state_fraction" in row and row["step"] <= run.step
    ]
    unchanged = all(torch.equal(trained[name], initial[name]) for name in initial)
    assert unchanged == (max(updated) == 0), f"updated state fractions {updated}, weights unchanged: {unchanged}"
    assert lab.cancel(run_id) == "cancelled"  # idempotent


@pytest.mark.timeout(300)
def test_two_workers_run_a_sweep_of_six_runs_each_exactly_once(lab, lab_settings, start_worker):
    workers = [start_worker(lab_settings, wait=False), start_worker(lab_settings, wait=False)]
    for worker in workers:  # started together: each takes seconds to import the training code
        worker.wait_ready()
    quick = dict(steps=2, save_every=2, eval_init_states=0, videos_per_eval=0)  # no evaluation at all
    sweep_id, run_ids = lab.launch_sweep(run_config(**quick), {"seed": [0, 1, 2], "group_size": [2, 4]}, "seeds x G")
    assert len(run_ids) == 6

    wait_for(
        lambda: all(lab.get_run(r).status not in ("queued", "running") for r in run_ids), 240, "all six runs to end"
    )
    runs = [lab.get_run(r) for r in run_ids]
    assert [(r.status, r.attempt) for r in runs] == [("finished", 1)] * 6
    assert {(r.config["seed"], r.config["group_size"]) for r in runs} == {(s, g) for s in (0, 1, 2) for g in (2, 4)}
    assert all(stored_steps(lab, r, "train/success") == [1, 2] for r in run_ids)
    claims = [int(m) for w in workers for m in re.findall(r"run (\d+) attempt 1: claimed", w.log_text())]
    assert sorted(claims) == sorted(run_ids), "every run claimed exactly once"
    assert len({r.worker_host for r in runs}) == 2, "both workers took runs"
    (sweep,) = lab.list_sweeps()
    assert (sweep.id, sweep.run_ids, sweep.status_counts) == (sweep_id, sorted(run_ids), {"finished": 6})
    assert [r.id for r in lab.list_runs(sweep_id=sweep_id)] == sorted(run_ids, reverse=True)


@pytest.mark.timeout(240)
def test_a_transformers_student_runs_like_any_other_run(lab, lab_settings, start_worker):
    from hf_models import build_tiny_llava
    from opd_core.checkpoint import save_checkpoint
    from opd_core.policies import build_policy
    from opd_core.tokenizer import ActionTokenizer
    from tinyrun import TINY_POLICY

    build_tiny_llava(lab_settings.data_dir / "models/tiny-vla", hidden=32, layers=1)  # the student's folder
    arch = {
        "width": TINY_POLICY["policy_width"],
        "hidden": TINY_POLICY["policy_hidden"],
        "input_size": TINY_POLICY["policy_input_size"],
    }
    save_checkpoint(
        lab_settings.data_dir / "models/teacher", build_policy("small_vla", arch, ActionTokenizer.identity()), step=0
    )
    with pytest.raises(ConfigError) as refused:  # a folder that is no model at all
        (lab_settings.data_dir / "models/empty").mkdir()
        lab.launch(run_config(pipeline="opd", student_checkpoint="models/empty", teacher_checkpoint="models/teacher"))
    assert refused.value.field == "student_checkpoint"
    start_worker(lab_settings)
    run_id = lab.launch(
        run_config(
            pipeline="opd",
            objective="reverse_kl",
            student_checkpoint="models/tiny-vla",
            teacher_checkpoint="models/teacher",
            steps=2,
            max_episode_steps=3,
            eval_every=2,
            save_every=2,
        )
    )
    run = wait_until_ended(lab, run_id, 200)
    assert (run.status, run.error) == ("finished", None)
    assert stored_steps(lab, run_id, "train/reverse_kl") == [1, 2]
    final = lab.checkpoints(run_id)[-1]
    assert final.step == 2 and (lab.artifact_path(final.path) / "hf_model/config.json").is_file()
