"""Faults inside a run (issue 13), through the real worker on both backends: a damaged newest checkpoint on
resume, and a diverging run. tests/test_train_faults.py covers the same faults at the library level; here the
point is what the lab records and shows: the run's status, error, events, metric series and checkpoints.
"""

from __future__ import annotations

import pytest
import torch

from lab_runs import SLOW_STEPS, run_config, stored_steps, wait_until_ended
from opd_core.checkpoint import save_checkpoint
from opd_core.policies import build_policy
from opd_core.sinks import read_metrics
from opd_core.tokenizer import ActionTokenizer
from polling import wait_for

TINY = {"width": 4, "hidden": 32, "input_size": 16}


def local_steps(lab, run_id: int, key: str) -> list[int]:
    return [row["step"] for row in read_metrics(lab.artifact_path(lab.get_run(run_id).out_dir)) if key in row]


def checkpoint_folders(lab, run_id: int) -> list[int]:
    folder = lab.artifact_path(lab.get_run(run_id).out_dir) / "checkpoints"
    return sorted(int(p.name.split("_")[1]) for p in folder.iterdir() if p.name.startswith("step_"))


@pytest.mark.timeout(240)
def test_a_truncated_newest_checkpoint_resumes_from_the_previous_one_every_step_once_and_says_so(
    lab, lab_settings, start_worker
):
    total, every = 40, 2
    worker = start_worker(lab_settings)
    run_id = lab.launch(run_config(steps=total, save_every=every, **SLOW_STEPS))
    wait_for(lambda: any(c.step >= 2 * every for c in lab.checkpoints(run_id)), 120, "a second checkpoint")
    lab.cancel(run_id)
    cancelled = wait_until_ended(lab, run_id, 60)
    assert cancelled.status == "cancelled", "the run ended before the cancel: make it longer"
    newest, previous = sorted(c.step for c in lab.checkpoints(run_id))[:-3:-1]
    assert newest == cancelled.step and previous > 0

    damaged = lab.artifact_path(next(c.path for c in lab.checkpoints(run_id) if c.step == newest))
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    lab.resume(run_id)  # what `opd resume` calls
    run = wait_until_ended(lab, run_id, 150)
    assert (run.status, run.attempt, run.step, run.error) == ("finished", 2, total, None)
    assert run.resumed_from_step == previous
    for key in ("train/success", "time/step_seconds"):
        assert stored_steps(lab, run_id, key) == list(range(1, total + 1)), key
    assert local_steps(lab, run_id, "train/success") == list(range(1, total + 1))
    assert lab.checkpoints(run_id)[-1].step == total

    events = lab.run_events(run_id)
    (skipped,) = [event for event in events if event.kind == "checkpoint_skipped"]
    assert f"skipping checkpoint {damaged}" in skipped.message and "model.safetensors" in skipped.message
    resumed = [event.message for event in events if event.kind == "resumed"]
    assert resumed == [f"attempt 2 resumed from the checkpoint of step {previous}"]
    assert f"skipping checkpoint {damaged}" in worker.log_text()  # the worker log says it too


@pytest.fixture
def policies(lab_settings):
    """A fresh student and teacher under the lab's data directory (the paths a researcher would give)."""
    root = lab_settings.data_dir / "policies"
    for name, seed in (("student", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        save_checkpoint(root / name, build_policy("small_vla", TINY, ActionTokenizer.identity()), step=0)
    return root


@pytest.mark.timeout(180)
def test_a_diverging_run_fails_naming_the_step_and_keeps_no_checkpoint_after_the_last_good_step(
    lab, lab_settings, start_worker, policies
):
    # The config of test_train_faults' huge-learning-rate test: one finite update at lr=1e6 makes the logits
    # overflow, and step 2's rollout meets them.
    diverging = run_config(
        pipeline="opd",
        student_checkpoint="policies/student",
        teacher_checkpoint="policies/teacher",
        steps=4,
        eval_every=0,
        save_every=1,
        lr=1e6,
    )
    start_worker(lab_settings)
    run_id = lab.launch(diverging)
    run = wait_until_ended(lab, run_id, 120)

    assert run.status == "failed"
    assert run.error.startswith("training diverged at step 2: the student's action logits are not finite"), run.error
    assert "last update: loss=" in run.error and ", grad norm=" in run.error and ", lr=1e+06" in run.error
    assert "DivergenceError" in run.traceback
    assert [c.step for c in lab.checkpoints(run_id)] == [0, 1], "nothing newer than the last good step"
    assert checkpoint_folders(lab, run_id) == [0, 1]
    assert stored_steps(lab, run_id, "train/loss") == [1]
    assert local_steps(lab, run_id, "train/loss") == [1]
    assert "diverged at step 2" in lab.run_events(run_id)[-1].message
