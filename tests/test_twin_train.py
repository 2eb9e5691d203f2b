"""Dual-arm runs end to end: a tiny OPD run on the twin env trains every parameter of a 14-D student, logs per-arm
diagnostics, films its evaluation; checkpoints record the action dimension; a teacher of another one is refused."""

from __future__ import annotations

import json

import pytest
import torch

from opd_core.checkpoint import load_policy, read_meta, save_checkpoint
from opd_core.config import ConfigError, RunConfig
from opd_core.errors import TokenizerMismatchError
from opd_core.policies.small_vla import SmallVLA
from opd_core.registry import build_policy, make_env
from opd_core.rollout import collect
from opd_core.sinks import LocalDirSink, read_metrics
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import train
from opd_core.video import read_video_info

TASKS = ["twin/handover_block", "twin/lift_pot"]
UNSEEN = ["unseen/stack_orange_bowl_green_bowl"]
TINY_ARCH = {"width": 4, "hidden": 32, "input_size": 16}


def _config(out_dir, **changes) -> RunConfig:
    base = dict(
        name="tiny-twin",
        env="twin",
        suite="twin",
        tasks=TASKS,
        unseen_tasks=UNSEEN,
        pipeline="opd",
        objective="reverse_kl",
        steps=1,
        batch_tasks=2,
        group_size=2,
        max_episode_steps=6,
        eval_every=1,
        eval_init_states=1,
        videos_per_eval=1,
        save_every=1,
        minibatch_size=64,
        updates_per_step=1,
        lr=1e-2,
        out_dir=str(out_dir),
        policy_width=4,
        policy_hidden=32,
        policy_input_size=16,
    )
    base.update(changes)
    return RunConfig.from_dict(base).validate()


def _policy(seed: int, dim: int = 14, proprio: int = 10) -> SmallVLA:
    torch.manual_seed(seed)
    return build_policy("small_vla", {**TINY_ARCH, "proprio_dim": proprio}, ActionTokenizer.identity(dim))


def _run(config: RunConfig):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink)
    finally:
        sink.close()


def _parameters(path) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in load_policy(path).named_parameters()}


@pytest.mark.parametrize("objective", ["reverse_kl", "forward_kl"])
def test_a_tiny_dual_arm_opd_run_moves_every_parameter(tmp_path, objective):
    save_checkpoint(tmp_path / "teacher", _policy(1), step=0)
    result = _run(_config(tmp_path / "run", objective=objective, teacher_checkpoint=str(tmp_path / "teacher")))
    assert result.status == "finished" and result.step == 1
    before, after = _parameters(tmp_path / "run/checkpoints/step_0"), _parameters(tmp_path / "run/checkpoints/step_1")
    assert before["head.weight"].shape == (14 * 256, 32) and before["proprio.0.weight"].shape == (64, 10)
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    rows = read_metrics(tmp_path / "run")
    keys = set().union(*rows)
    per_arm = {f"train/{key}/{arm}_arm" for key in ("entropy", "reverse_kl", "forward_kl") for arm in ("left", "right")}
    assert per_arm <= keys, per_arm - keys
    assert {"train/entropy/left/dx", "train/reverse_kl/right/gripper", f"eval/success/{TASKS[0]}"} <= keys
    train_row = next(row for row in rows if "train/entropy/left_arm" in row)
    assert train_row["train/entropy/left_arm"] > 0 and train_row["train/reverse_kl/right_arm"] >= 0
    videos = [json.loads(line) for line in (tmp_path / "run/videos.jsonl").read_text().splitlines()]
    assert videos and all(read_video_info(tmp_path / "run" / v["path"])["codec"] == "h264" for v in videos)


def test_checkpoints_record_the_action_dimension_and_reload_the_fourteen_dim_head(tmp_path):
    policy = _policy(2)
    save_checkpoint(tmp_path / "ckpt", policy, step=3)
    meta = read_meta(tmp_path / "ckpt")
    assert meta["action_dim"] == 14 and meta["policy"]["arch"]["action_dim"] == 14
    loaded = load_policy(tmp_path / "ckpt")
    env = make_env("twin", 2, image_size=32)
    obs = env.reset(TASKS, [0, 1])
    policy.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(policy(obs), loaded(obs)) and loaded(obs).shape == (2, 14, 256)
    rollout = collect(loaded, env, TASKS, [0, 1], 1.0, torch.Generator().manual_seed(0), film={0})
    assert rollout.actions.shape[1] == 14 and rollout.frames[0][0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="head is 7 dims x 256 bins but its action tokenizer has 14"):
        SmallVLA.build({**TINY_ARCH, "action_dim": 7}, ActionTokenizer.identity(14))


def test_a_teacher_of_another_action_dimension_is_refused(tmp_path):
    save_checkpoint(tmp_path / "teacher", _policy(1, dim=7, proprio=5), step=0)  # a one-arm (tabletop) teacher
    config = _config(tmp_path / "run", teacher_checkpoint=str(tmp_path / "teacher"))
    refused = r"teacher action dimension \(7\) differs from the student's \(14\)"
    with pytest.raises(TokenizerMismatchError, match=refused):
        _run(config)
    assert not (tmp_path / "run/checkpoints").exists()  # refused before anything ran


def test_dual_arm_demos_round_trip_and_train_a_fresh_student_by_sft(tmp_path):
    from opd_core.data import load_demos
    from opd_core.demos import generate_demos

    counts = generate_demos(TASKS, 2, tmp_path / "demos", noise=0.3, seed=0, env="twin")
    assert counts == dict.fromkeys(TASKS, 2)
    demos = load_demos(tmp_path / "demos", 2, TASKS)
    assert demos.actions.shape[1] == 14 and demos.proprio.shape[1] == 10 and demos.images.shape[1:] == (64, 64, 3)
    env = make_env("twin", 1)
    first = env.reset([demos.tasks[0]], [1000])  # the first demo starts from init state 1000
    assert (demos.proprio[0] == first.proprio[0]).all() and (demos.images[0] == first.image[0]).all()
    config = _config(
        tmp_path / "sft",
        pipeline="sft",
        demos=str(tmp_path / "demos"),
        num_demos=2,
        steps=2,
        eval_every=2,
        sft_batch_size=32,
        teacher_checkpoint="",
    )
    assert _run(config).status == "finished"
    before, after = _parameters(tmp_path / "sft/checkpoints/step_0"), _parameters(tmp_path / "sft/checkpoints/step_2")
    assert not [name for name in before if torch.equal(before[name], after[name])]
    assert read_meta(tmp_path / "sft/checkpoints/step_2")["action_dim"] == 14


def test_a_one_arm_student_is_refused_on_the_dual_arm_env(tmp_path):
    save_checkpoint(tmp_path / "student", _policy(3, dim=7, proprio=5), step=0)
    save_checkpoint(tmp_path / "teacher", _policy(1), step=0)
    config = _config(
        tmp_path / "run", student_checkpoint=str(tmp_path / "student"), teacher_checkpoint=str(tmp_path / "teacher")
    )
    with pytest.raises(ConfigError, match="the student acts in 7-D, the twin env takes 14-D actions"):
        _run(config)
