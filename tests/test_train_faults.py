"""Faults a run must survive or report clearly: damaged checkpoints on resume, divergence (non-finite loss or
gradient). Tiny opd runs from fresh small policies (no demos needed)."""

import json
import pickle

import pytest
import torch

from opd_core import objectives
from opd_core.checkpoint import load_policy, save_checkpoint, verify_checkpoint
from opd_core.config import ConfigError
from opd_core.errors import CheckpointError, CheckpointSkippedWarning, DivergenceError
from opd_core.policies import build_policy
from opd_core.sinks import LocalDirSink, read_metrics
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import train
from tinyrun import tiny_config

TINY = {"width": 4, "hidden": 32, "input_size": 16}


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    root = tmp_path_factory.mktemp("policies")
    for name, seed in (("student", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        save_checkpoint(root / name, build_policy("small_vla", TINY, ActionTokenizer.identity()), step=0)
    return root


def _config(out_dir, policies, **changes):
    base = dict(
        pipeline="opd",
        student_checkpoint=str(policies / "student"),
        teacher_checkpoint=str(policies / "teacher"),
        steps=4,
        eval_every=0,
        save_every=1,
        lr=1e-2,
    )
    return tiny_config(out_dir, **{**base, **changes})


def _run(config, **kwargs):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink, **kwargs)
    finally:
        sink.close()


def _parameters(path):
    return {name: p.detach().clone() for name, p in load_policy(path).named_parameters()}


def _train_steps(run_dir):
    return [row["step"] for row in read_metrics(run_dir) if "train/loss" in row]


# ============================================================================ damaged checkpoints on resume
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_json(path):
    path.write_text(path.read_text()[:-40])


@pytest.fixture(scope="module")
def straight(policies, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    assert _run(_config(run_dir, policies)).status == "finished"
    return run_dir


def test_rollout_metrics_per_action_dimension(straight):
    row = next(row for row in read_metrics(straight) if "train/loss" in row)
    for key in ("entropy", "reverse_kl", "forward_kl"):
        for dim in ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"):
            assert f"train/{key}/{dim}" in row, (key, dim)
    assert row["train/reverse_kl/gripper"] >= 0 and row["train/entropy/dx"] > 0


@pytest.mark.parametrize(
    "damage, file",
    [
        (_truncate, "model.safetensors"),
        (_bad_json, "meta.json"),
        (lambda path: path.unlink(), "training_state.safetensors"),
    ],
)
def test_resume_skips_a_damaged_newest_checkpoint(policies, straight, tmp_path, damage, file):
    run_dir = tmp_path / "run"
    stops = iter([False, False, True])
    cancelled = _run(_config(run_dir, policies), stop_requested=lambda: next(stops))
    assert cancelled.status == "cancelled" and cancelled.step == 3
    damage(run_dir / "checkpoints/step_3" / file)
    with pytest.raises(CheckpointError, match=file):
        verify_checkpoint(run_dir / "checkpoints/step_3")

    with pytest.warns(CheckpointSkippedWarning, match=f"step_3.*{file}"):
        resumed = _run(_config(run_dir, policies), resume=True)
    assert resumed.status == "finished" and resumed.step == 4 and resumed.resumed_from == 2
    assert _train_steps(run_dir) == [1, 2, 3, 4], "every step exactly once"
    expected = _parameters(straight / "checkpoints/step_4")
    for name, value in _parameters(run_dir / "checkpoints/step_4").items():
        assert torch.equal(value, expected[name]), name  # resumed exactly from step 2's state


def test_resume_refuses_when_no_checkpoint_loads(policies, tmp_path):
    run_dir = tmp_path / "run"
    _run(_config(run_dir, policies, steps=1))
    for step in (0, 1):
        _truncate(run_dir / f"checkpoints/step_{step}/model.safetensors")
    with pytest.warns(CheckpointSkippedWarning), pytest.raises(CheckpointError, match="no checkpoint of .* loads"):
        _run(_config(run_dir, policies, steps=1), resume=True)


def test_a_checkpoint_lists_its_files_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    policy = build_policy("small_vla", TINY, ActionTokenizer.identity())
    path = save_checkpoint(tmp_path / "step_1", policy, step=1)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["files"] == {"model.safetensors": (path / "model.safetensors").stat().st_size}
    verify_checkpoint(path)

    def disk_full(directory):
        (directory / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(policy, "save_weights", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "step_2", policy, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_1"]


# ============================================================================ divergence
def _checkpoint_steps(run_dir):
    return sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").iterdir())


def test_a_huge_learning_rate_stops_the_run_naming_the_step_and_values(policies, tmp_path):
    """One finite update at lr=1e6 makes the logits overflow: step 2's rollout meets them (torch used to fail there
    with 'probability tensor contains either inf, nan or element < 0')."""
    run_dir = tmp_path / "run"
    with pytest.raises(
        DivergenceError,
        match=r"diverged at step 2: the student's action logits are not finite"
        r".*last update: loss=.*, grad norm=.*, lr=1e\+06",
    ) as caught:
        _run(_config(run_dir, policies, lr=1e6))
    assert caught.value.step == 2
    assert _checkpoint_steps(run_dir) == [0, 1], "nothing newer than the last checkpoint"
    assert _train_steps(run_dir) == [1]
    again = pickle.loads(pickle.dumps(caught.value))  # crosses process boundaries (study jobs, Celery)
    assert str(again) == str(caught.value)


@pytest.fixture
def nan_at_step_2(monkeypatch):
    """The distillation loss of the second step (one minibatch per step at these sizes) becomes NaN."""
    original, calls = objectives.distillation_loss, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = original(*args, **kwargs)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(objectives, "distillation_loss", poisoned)


def test_an_injected_nan_stops_before_the_update(policies, tmp_path, nan_at_step_2):
    run_dir = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"diverged at step 2: loss=nan, grad norm=nan, lr=0.01 \(the update"):
        _run(_config(run_dir, policies))
    assert _checkpoint_steps(run_dir) == [0, 1] and _train_steps(run_dir) == [1]


def test_skip_drops_the_non_finite_update_and_counts_it(policies, tmp_path, nan_at_step_2):
    run_dir = tmp_path / "run"
    result = _run(_config(run_dir, policies, on_nonfinite="skip"))
    assert result.status == "finished" and result.step == 4
    rows = [row for row in read_metrics(run_dir) if "train/loss" in row]
    assert [row["train/skipped_updates"] for row in rows] == [0.0, 1.0, 0.0, 0.0]
    step_1, step_2 = _parameters(run_dir / "checkpoints/step_1"), _parameters(run_dir / "checkpoints/step_2")
    assert all(torch.equal(step_1[name], step_2[name]) for name in step_1), "the skipped update was not applied"
    step_3 = _parameters(run_dir / "checkpoints/step_3")
    assert any(not torch.equal(step_2[name], step_3[name]) for name in step_2), "later updates apply again"


def test_on_nonfinite_is_validated():
    with pytest.raises(ConfigError, match="on_nonfinite"):
        tiny_config("x", on_nonfinite="ignore")
