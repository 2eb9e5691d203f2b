"""LIBERO as the second simulator: install message, HDF5 loader, worker restarts, and a tiny OPD run end to end.

Tests that need LIBERO skip (saying why) when the optional extra is not installed; CI installs it with
`pip install -r requirements-libero.txt`. Sizes are tiny: the CI machine has 2 cores and a LIBERO simulator takes
seconds to build.
"""

from __future__ import annotations

import json
import os
import signal
import time

import h5py
import numpy as np
import pytest
import torch

from opd_core.envs.libero import INSTALL_HINT, libero_available

needs_libero = pytest.mark.skipif(
    not libero_available(),
    reason="LIBERO is an optional extra and is not installed here (pip install -r requirements-libero.txt)",
)

OBJECT_TASK = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
OBJECT_INSTRUCTION = "pick up the alphabet soup and place it in the basket"


# ============================================================================ without LIBERO
def test_missing_extra_is_a_clear_error(monkeypatch):
    import opd_core.envs.libero as package
    from opd_core.errors import EnvironmentUnavailable
    from opd_core.registry import make_env, task_catalog

    monkeypatch.setattr(package, "libero_available", lambda: False)
    for call in (lambda: make_env("libero", 1), lambda: task_catalog("libero")):
        with pytest.raises(EnvironmentUnavailable, match="pip install -r requirements-libero.txt"):
            call()
    assert "requirements-libero.txt" in INSTALL_HINT


def _write_original_layout(path, num_demos: int, steps: int, size: int = 16) -> tuple[list, list]:
    """A demo file shaped like LIBERO's originals: problem_info without a task key, extra obs keys, robot states,
    camera frames as rendered (upside down). Returns each demo's actions and frames."""
    rng = np.random.default_rng(0)
    actions, frames = [], []
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {
                "problem_name": "libero_floor_manipulation",
                "domain_name": "robosuite",
                "language_instruction": OBJECT_INSTRUCTION,
            }
        )
        data.attrs["env_args"] = json.dumps(
            {
                "type": 1,
                "env_name": "Libero_Floor_Manipulation",
                "env_kwargs": {"camera_heights": size, "camera_widths": size},
            }
        )
        data.attrs["bddl_file_name"] = f"libero/libero/bddl_files/libero_object/{OBJECT_TASK}.bddl"
        data.attrs["num_demos"] = num_demos
        data.attrs["total"] = num_demos * steps
        for i in range(num_demos):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = steps
            demo.attrs["init_state"] = rng.normal(size=77)
            action = rng.uniform(-1, 1, size=(steps, 7))
            action[:, 6] = np.sign(action[:, 6])
            actions.append(action)
            demo.create_dataset("actions", data=action)
            demo.create_dataset("states", data=rng.normal(size=(steps, 77)))
            demo.create_dataset("robot_states", data=rng.normal(size=(steps, 9)))
            demo.create_dataset("rewards", data=np.r_[np.zeros(steps - 1), 1].astype(np.uint8))
            demo.create_dataset("dones", data=np.r_[np.zeros(steps - 1), 1].astype(np.uint8))
            obs = demo.create_group("obs")
            frames.append(rng.integers(0, 255, (steps, size, size, 3), dtype=np.uint8))
            obs.create_dataset("agentview_rgb", data=frames[-1])
            obs.create_dataset("eye_in_hand_rgb", data=rng.integers(0, 255, (steps, size, size, 3), dtype=np.uint8))
            obs.create_dataset("ee_pos", data=rng.normal(size=(steps, 3)))
            obs.create_dataset("ee_ori", data=rng.normal(size=(steps, 3)))
            obs.create_dataset("ee_states", data=rng.normal(size=(steps, 6)))
            obs.create_dataset("gripper_states", data=rng.normal(size=(steps, 2)))
            obs.create_dataset("joint_states", data=rng.normal(size=(steps, 7)))
    return actions, frames


def test_hdf5_loader_reads_liberos_original_layout(tmp_path):
    from opd_core.data import load_demos

    folder = tmp_path / "libero_object"
    folder.mkdir()
    actions, frames = _write_original_layout(folder / f"{OBJECT_TASK}_demo.hdf5", num_demos=3, steps=5)
    # a second task's file in the folder must be ignored when only the first task is asked for
    _write_original_layout(folder / "pick_up_the_milk_and_place_it_in_the_basket_demo.hdf5", num_demos=1, steps=4)

    one = load_demos(folder, 1, [OBJECT_TASK])  # the paper's 1-demo split
    assert one.tasks == [OBJECT_TASK] and one.instructions == [OBJECT_INSTRUCTION]
    assert one.images.shape == (5, 16, 16, 3) and one.images.dtype == np.uint8
    assert one.proprio.shape == (5, 5) and one.proprio.dtype == np.float32
    np.testing.assert_allclose(one.actions, actions[0])
    np.testing.assert_array_equal(one.images, frames[0][:, ::-1, ::-1])  # upright, as the simulator shows it
    every = load_demos(folder, 50, [OBJECT_TASK])
    assert len(every) == 15 and every.episodes_per_task == {OBJECT_TASK: 3}
    both = load_demos(folder, 50)
    assert sorted(both.episodes_per_task.values()) == [1, 3]


def _expert_state(eef=(0.0, 0.0, 0.25), target=(0.1, -0.1, 0.02), grasped=False, opening=0.08):
    from opd_core.envs.libero.sim import PRIV

    state = np.zeros(PRIV.SIZE, np.float32)
    state[PRIV.EEF] = eef
    state[PRIV.APPROACH] = (0.0, 0.0, -1.0)
    state[PRIV.FINGER_YAW] = np.pi / 2
    state[PRIV.OPENING] = opening
    state[PRIV.TARGET_CENTER] = target
    state[PRIV.TARGET_HALF] = (0.04, 0.02, 0.02)
    state[PRIV.TARGET_LONG], state[PRIV.TARGET_SHORT] = 0.08, 0.04
    state[PRIV.BASKET_CENTER] = (0.0, 0.26)
    state[PRIV.BASKET_TOP], state[PRIV.BASKET_INNER] = 0.14, 0.06
    state[PRIV.GRASPED] = float(grasped)
    state[PRIV.VALID] = 1.0
    state[PRIV.OBSTACLES] = np.tile([10.0, 10.0, 0.0, -1.0], PRIV.MAX_OBSTACLES)
    return state


def test_expert_phases_and_calibrated_logits_without_a_simulator():
    from opd_core.envs.base import Observation
    from opd_core.envs.libero.expert import expert_actions, expert_logits
    from opd_core.envs.libero.policy import LiberoExpertPolicy
    from opd_core.tokenizer import ActionTokenizer

    far = _expert_state()
    above = _expert_state(eef=(0.1, -0.1, 0.03))
    holding = _expert_state(eef=(0.1, -0.1, 0.03), target=(0.1, -0.1, 0.03), grasped=True, opening=0.04)
    actions = expert_actions(np.stack([far, above, holding]))
    assert actions.shape == (3, 7) and np.abs(actions).max() <= 1.0
    assert actions[0, 0] > 0 and actions[0, 1] < 0 and actions[0, 6] < 0, "moves towards the target, open"
    assert actions[1, 6] > 0, "closes at the grasp point"
    assert actions[2, 2] > 0 and actions[2, 6] > 0, "lifts what it holds"

    tokenizer = ActionTokenizer.identity()
    logits = expert_logits(actions, tokenizer)
    assert logits.shape == (3, 7, 256) and np.isfinite(logits).all()
    np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, rtol=1e-5)
    half_bin = 1.0 / 256 + 1e-9  # the mode is the bin whose centre is nearest the expert's action
    assert np.abs(tokenizer.decode(logits.argmax(-1)) - actions).max() <= half_bin

    policy = LiberoExpertPolicy(tokenizer)
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    proprio = np.zeros((3, 5), np.float32)
    plain = Observation(images, proprio, ["x"] * 3)
    with pytest.raises(RuntimeError, match="privileged"):
        policy(plain)
    with_state = Observation(images, proprio, ["x"] * 3, np.stack([far, above, holding]))  # as LIBERO gives them
    bins, _, _ = policy.sample(with_state.take(np.arange(3)), 0.0)
    assert np.abs(tokenizer.decode(bins.numpy()) - actions).max() <= half_bin


def test_expert_teacher_checkpoint_round_trip(tmp_path):
    from opd_core.checkpoint import load_policy
    from opd_core.envs.libero.expert import LogitParams
    from opd_core.envs.libero.policy import LiberoExpertPolicy, save_expert_checkpoint

    save_expert_checkpoint(tmp_path / "teacher", logit_params=LogitParams(sigma=(0.1,) * 7))
    teacher = load_policy(tmp_path / "teacher")
    assert isinstance(teacher, LiberoExpertPolicy) and teacher.logit_params.sigma == (0.1,) * 7


# ============================================================================ with LIBERO
@needs_libero
def test_catalog_follows_the_standard_protocol():
    from opd_core.envs.libero import catalog

    cat = catalog()
    for suite, steps in (("libero_spatial", 220), ("libero_object", 280), ("libero_goal", 300), ("libero_10", 520)):
        assert len(cat.suite_tasks(suite)) == 10
        assert cat.max_episode_steps(suite) == steps
    assert cat.suite_tasks("object") == cat.suite_tasks("libero_object")
    assert OBJECT_TASK in cat.suite_tasks("libero_object")
    assert cat.instruction(OBJECT_TASK) == OBJECT_INSTRUCTION


@needs_libero
def test_crashed_or_hung_worker_is_restarted_and_its_episode_retried_or_marked():
    from opd_core.envs.libero import make_libero_env

    env = make_libero_env(1, image_size=32, cameras=False, num_workers=1, max_retries=1, step_timeout=5.0)
    try:
        obs = env.reset([OBJECT_TASK], [0])
        assert obs.image.shape == (1, 32, 32, 3) and obs.proprio.shape == (1, 5)
        up = np.array([[0, 0, 1.0, 0, 0, 0, -1]])
        env.step(up)
        # crash: the worker dies mid-episode; the step is replayed on a fresh worker from the saved slot state
        os.kill(env.worker_pids[0], signal.SIGKILL)
        after, success = env.step(up)
        assert [e["kind"] for e in env.events] == ["restart", "retry"]
        assert not env.failed[0] and not success[0]
        env.reset([OBJECT_TASK], [0])  # the same episode without a crash ends in exactly the same state
        env.step(up)
        reference, _ = env.step(up)
        np.testing.assert_array_equal(after.proprio, reference.proprio)
        np.testing.assert_array_equal(after.state, reference.state)
        # hang: a stopped worker misses its deadline and is killed; with no retries allowed, the episode is marked
        env.max_retries = 0
        os.kill(env.worker_pids[0], signal.SIGSTOP)
        started = time.perf_counter()
        frozen, success = env.step(up)
        assert time.perf_counter() - started < 30
        assert env.failed[0] and not success[0]
        assert [e["kind"] for e in env.events][-2:] == ["restart", "episode_failed"]
        np.testing.assert_array_equal(frozen.proprio, reference.proprio)
        # the next episode starts clean on a new worker
        env.reset([OBJECT_TASK], [1])
        assert not env.failed.any()
    finally:
        env.close()


@needs_libero
def test_two_opd_steps_on_libero_object_write_metrics_and_a_playable_video(tmp_path):
    from extra_smoke import two_opd_steps
    from opd_core.envs.libero.policy import save_expert_checkpoint
    from opd_core.video import read_video_info

    result, rows, videos = two_opd_steps(
        tmp_path,
        env="libero",
        suite="libero_object",
        task=OBJECT_TASK,
        save_expert=save_expert_checkpoint,
        image_size=32,
    )
    from opd_core.envs.libero.pool import _LIVE

    assert not _LIVE, "train() closes its LIBERO environments (their worker processes hold GBs)"
    assert result.status == "finished" and result.step == 2
    steps = [row for row in rows if "train/loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:
        assert np.isfinite(row["train/loss"]) and np.isfinite(row["train/reverse_kl"])
        assert row["train/episode_length"] == 3.0
    keys = set().union(*rows)
    assert {"eval/seen_success", f"eval/success/{OBJECT_TASK}", "time/rollout_seconds", "time/env_steps"} <= keys
    assert videos
    for video in videos:
        info = read_video_info(tmp_path / "run" / video["path"])
        assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["frames"] == 4

    # `opd eval` on the run's checkpoint: the standard protocol (object suite: at most 280 steps after the no-op
    # warm-up) with per-task success and an agent-view | wrist video
    from opd_core.cli import main

    out = tmp_path / "eval"
    assert main(["eval", str(tmp_path / "run/checkpoints/step_2"), "--init-states", "1", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["env"] == "libero" and "no-op" in report["protocol"]
    assert set(report["per_task"]) == {OBJECT_TASK} and report["failed_episodes"] == 0
    length = report["mean_length"][OBJECT_TASK]
    assert report["per_task"][OBJECT_TASK] == 1.0 or length == 280
    [video] = report["videos"]
    info = read_video_info(out / video["path"])
    assert info["frames"] == length + 1 and info["width"] == 2 * 2 * 32  # two cameras side by side, scaled x2


@needs_libero
def test_sft_from_an_original_demo_file_and_grpo_run_on_libero_too(tmp_path):
    from opd_core.checkpoint import save_checkpoint
    from opd_core.config import RunConfig
    from opd_core.policies import build_policy
    from opd_core.sinks import LocalDirSink, read_metrics
    from opd_core.tokenizer import ActionTokenizer
    from opd_core.train import train

    folder = tmp_path / "demos"
    folder.mkdir()
    _write_original_layout(folder / f"{OBJECT_TASK}_demo.hdf5", num_demos=1, steps=6, size=32)
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "student",
        build_policy("small_vla", {"width": 4, "hidden": 32, "input_size": 16}, ActionTokenizer.identity()),
        step=0,
    )
    common = dict(
        env="libero",
        suite="libero_object",
        tasks=[OBJECT_TASK],
        image_size=32,
        steps=1,
        eval_init_states=0,
        save_every=0,
        student_checkpoint=str(tmp_path / "student"),
    )
    runs = {
        "sft": dict(demos=str(folder), num_demos=1, sft_batch_size=4),
        "grpo": dict(batch_tasks=1, group_size=2, max_episode_steps=3, minibatch_size=64, updates_per_step=1),
    }
    for pipeline, extra in runs.items():
        config = RunConfig.from_dict(
            dict(name=f"libero-{pipeline}", pipeline=pipeline, **common, **extra, out_dir=str(tmp_path / pipeline))
        ).validate()
        sink = LocalDirSink(config.out_dir)
        try:
            result = train(config, sink)
        finally:
            sink.close()
        assert result.status == "finished" and result.step == 1, pipeline
        [row] = [row for row in read_metrics(tmp_path / pipeline) if "train/loss" in row]
        assert np.isfinite(row["train/loss"]), pipeline
