"""End-to-end runs of every pipeline on tiny sizes: parameters move, metrics and artifacts appear, resume is exact."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import opd_core.train
from opd_core import objectives
from opd_core.checkpoint import load_policy, load_training_state, save_checkpoint
from opd_core.errors import CheckpointError, TokenizerMismatchError
from opd_core.rollout import collect
from opd_core.sinks import LocalDirSink, read_metrics
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import train
from opd_core.video import read_video_info
from tinyrun import TASKS, UNSEEN, make_demos, tiny_config

SHIPPED_STUDENT = Path(__file__).resolve().parent.parent / "assets/tabletop/object/student"
"""The 1-demo object student: its success on the first object task is neither 0 nor 1, so GRPO groups mix."""


def _run(config, **kwargs):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink, **kwargs)
    finally:
        sink.close()


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    demos = make_demos(root / "demos", num=2)
    config = tiny_config(root / "run", pipeline="sft", demos=str(demos), num_demos=2, steps=4, eval_every=4, lr=3e-3)
    result = _run(config)
    return root / "run", result


def _parameters(path):
    return {name: p.detach().clone() for name, p in load_policy(path).named_parameters()}


def test_sft_trains_every_parameter_and_writes_artifacts(sft_run):
    run_dir, result = sft_run
    assert result.status == "finished" and result.step == 4
    before, after = _parameters(run_dir / "checkpoints/step_0"), _parameters(run_dir / "checkpoints/step_4")
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    rows = read_metrics(run_dir)
    assert {"train/loss", "train/entropy", "time/step_seconds"} <= set().union(*rows)
    videos = [json.loads(line) for line in (run_dir / "videos.jsonl").read_text().splitlines()]
    assert videos and all(read_video_info(run_dir / v["path"])["codec"] == "h264" for v in videos)


@pytest.mark.parametrize("objective", ["reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce"])
def test_distillation_objectives_move_every_parameter(sft_run, tmp_path, objective):
    run_dir, _ = sft_run
    student = run_dir / "checkpoints/step_0"
    config = tiny_config(
        tmp_path / "opd",
        pipeline="opd",
        objective=objective,
        student_checkpoint=str(student),
        teacher_checkpoint=str(run_dir / "checkpoints/step_4"),
        steps=1,
        lr=1e-2,
        eval_every=1,
    )
    result = _run(config)
    assert result.status == "finished"
    before, after = _parameters(student), _parameters(tmp_path / "opd/checkpoints/step_1")
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    keys = set().union(*read_metrics(tmp_path / "opd"))
    expected = {
        "train/success",
        "train/entropy",
        "train/reverse_kl",
        "train/forward_kl",
        "train/loss",
        "eval/seen_success",
        "eval/unseen_success",
        f"eval/success/{TASKS[0]}",
        f"eval/success/{UNSEEN[0]}",
        "time/env_steps",
        "time/step_seconds",
        "time/rollout_seconds",
        "time/label_seconds",
    }
    assert expected <= keys, expected - keys


def _action_logp(policy, rollout):
    """Summed log-probability of each visited state's sampled action bins under `policy` [S]."""
    policy.eval()
    with torch.no_grad():
        return objectives.token_logprobs(policy(rollout.obs, rollout.actions), rollout.actions).sum(-1)


def test_grpo_step_raises_the_likelihood_of_successful_actions(tmp_path, monkeypatch):
    """One GRPO update (one full-batch gradient step) from the shipped 1-demo student, whose groups mix success and
    failure: only states of mixed groups are used, and the actions of successful trajectories become more likely
    while those of failed ones become less likely (a sign-flipped or advantage-free update fails here)."""
    rollouts = []

    def recording_collect(*args, **kwargs):
        rollout = collect(*args, **kwargs)
        rollouts.append(rollout)
        return rollout

    monkeypatch.setattr(opd_core.train, "collect", recording_collect)
    group_size = 6
    config = tiny_config(
        tmp_path / "grpo",
        pipeline="grpo",
        tasks=TASKS,
        student_checkpoint=str(SHIPPED_STUDENT),
        steps=1,
        batch_tasks=2,
        group_size=group_size,
        max_episode_steps=0,
        eval_every=0,
        eval_init_states=0,
        save_every=1,
        updates_per_step=1,
        minibatch_size=4096,
        lr=1e-5,
        policy_width=16,
        policy_hidden=256,
        policy_input_size=32,
    )
    result = _run(config)
    assert result.status == "finished"
    (rollout,) = rollouts
    success = torch.from_numpy(rollout.success.astype(np.float32)).view(-1, group_size)
    mixed = (success.min(-1).values != success.max(-1).values).numpy()
    assert mixed.any(), f"the test needs a group with mixed outcomes, got {success.tolist()}"
    advantage = objectives.group_advantages(success).reshape(-1)[torch.from_numpy(rollout.trajectory)]

    # the states used are exactly those of mixed groups (constant groups carry no advantage)
    used = [row["train/updated_state_fraction"] for row in read_metrics(tmp_path / "grpo") if "train/loss" in row]
    assert used == [pytest.approx(float((advantage != 0).float().mean()))]

    before = _action_logp(load_policy(SHIPPED_STUDENT), rollout)
    after = _action_logp(load_policy(tmp_path / "grpo/checkpoints/step_1"), rollout)
    change = after - before
    assert float((advantage * change).sum()) > 0, "the update did not follow the advantage"
    assert float(change[advantage > 0].mean()) > 0, "successful trajectories' actions did not become more likely"
    assert float(change[advantage < 0].mean()) < 0, "failed trajectories' actions did not become less likely"


def test_grpo_and_distill_then_grpo_run(sft_run, tmp_path):
    run_dir, _ = sft_run
    common = dict(student_checkpoint=str(run_dir / "checkpoints/step_4"), eval_every=0, eval_init_states=1)
    grpo = _run(tiny_config(tmp_path / "grpo", pipeline="grpo", **common))
    both = _run(
        tiny_config(
            tmp_path / "both",
            pipeline="opd_then_grpo",
            steps=1,
            grpo_steps=1,
            teacher_checkpoint=str(run_dir / "checkpoints/step_4"),
            **common,
        )
    )
    assert grpo.status == both.status == "finished"
    phases = [row["train/phase_grpo"] for row in read_metrics(tmp_path / "both") if "train/phase_grpo" in row]
    assert phases == [0.0, 1.0]


def test_resume_continues_exactly_where_a_cancelled_run_stopped(sft_run, tmp_path):
    run_dir, _ = sft_run
    common = dict(
        pipeline="opd",
        student_checkpoint=str(run_dir / "checkpoints/step_0"),
        teacher_checkpoint=str(run_dir / "checkpoints/step_4"),
        steps=4,
        eval_every=2,
        lr=1e-2,
        save_every=0,
    )
    straight = _run(tiny_config(tmp_path / "straight", **common))
    assert straight.status == "finished"

    calls = iter([False, True])
    cancelled = _run(tiny_config(tmp_path / "interrupted", **common), stop_requested=lambda: next(calls))
    assert cancelled.status == "cancelled" and cancelled.step == 2
    checkpoint = tmp_path / "interrupted/checkpoints/step_2"
    assert load_training_state(checkpoint).step == 2
    resumed = _run(tiny_config(tmp_path / "interrupted", **common), resume=True)
    assert resumed.status == "finished" and resumed.step == 4

    a, b = tmp_path / "straight/checkpoints/step_4", tmp_path / "interrupted/checkpoints/step_4"
    for name, value in _parameters(a).items():
        assert torch.equal(value, _parameters(b)[name]), name
    opt_a = json.loads((a / "meta.json").read_text())["optimizer"]
    opt_b = json.loads((b / "meta.json").read_text())["optimizer"]
    assert opt_a == opt_b
    steps = [row["step"] for row in read_metrics(tmp_path / "interrupted") if "train/loss" in row]
    assert steps == [1, 2, 3, 4], "each step exactly once after resume"
    clocks = {row["step"]: row for row in read_metrics(tmp_path / "interrupted") if "train/loss" in row}
    for key in ("time/wall_seconds", "time/cpu_seconds"):  # the resumed attempt adds to the first one's time
        assert 0 < clocks[2][key] < clocks[3][key] <= clocks[4][key], key


def test_missing_teacher_is_a_clear_error(sft_run, tmp_path):
    run_dir, _ = sft_run
    config = tiny_config(
        tmp_path / "x",
        pipeline="opd",
        student_checkpoint=str(run_dir / "checkpoints/step_0"),
        teacher_checkpoint=str(tmp_path / "no-such-teacher"),
    )
    with pytest.raises(CheckpointError, match="teacher checkpoint not found"):
        _run(config)


def test_teacher_with_other_action_statistics_is_refused(sft_run, tmp_path):
    run_dir, _ = sft_run
    teacher = load_policy(run_dir / "checkpoints/step_4")
    teacher.tokenizer = ActionTokenizer.fit(np.random.default_rng(0).normal(size=(100, 7)))
    save_checkpoint(tmp_path / "teacher", teacher, step=0)
    config = tiny_config(
        tmp_path / "x",
        pipeline="opd",
        student_checkpoint=str(run_dir / "checkpoints/step_0"),
        teacher_checkpoint=str(tmp_path / "teacher"),
    )
    with pytest.raises(TokenizerMismatchError):
        _run(config)
