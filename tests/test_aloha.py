"""The ALOHA extra (gym-aloha in its own venv): install message, action layout, the expert teacher, the worker pool
under the other interpreter (crash and hang), determinism, and a tiny OPD run with an eval and a video.

Tests that need the extra skip (saying why) when `.venv-aloha` is missing, unless OPD_REQUIRE_ALOHA=1 (CI, which
installs it with `bash scripts/setup_aloha.sh`), where they fail. Sizes are tiny: every rendered frame costs about
0.1 s of Mesa's software EGL.
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import torch

from opd_core.envs.aloha import INSTALL_HINT, aloha_available

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _needs_aloha():
    if aloha_available():
        return
    message = "the ALOHA extra is not installed here (bash scripts/setup_aloha.sh)"
    if os.environ.get("OPD_REQUIRE_ALOHA") == "1":
        pytest.fail(f"{message}, and OPD_REQUIRE_ALOHA=1 makes its tests mandatory", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def aloha():
    _needs_aloha()


# ============================================================================ without the extra
def test_missing_extra_is_a_clear_error(monkeypatch, tmp_path):
    import opd_core.envs.aloha as package
    from opd_core.errors import EnvironmentUnavailable
    from opd_core.registry import make_env

    monkeypatch.setenv("OPD_ALOHA_PYTHON", str(tmp_path / "no-such-python"))
    assert not package.aloha_available()
    with pytest.raises(EnvironmentUnavailable, match="scripts/setup_aloha.sh") as error:
        make_env("aloha", 1)
    assert "no-such-python" in str(error.value) and "setup_aloha.sh" in INSTALL_HINT


def test_catalog_and_action_layout_need_no_extra():
    from opd_core.envs.aloha.tasks import JOINT_HIGH, JOINT_LOW, normalize_actions, unnormalize_actions
    from opd_core.registry import env_spec, task_catalog

    cat = task_catalog("aloha")
    assert cat.suite_tasks("aloha") == ["transfer_cube", "insertion"]
    assert cat.max_episode_steps("aloha") == 300
    assert "hand it over to the left arm" in cat.instruction("transfer_cube")
    spec = env_spec("aloha")
    assert spec.fresh_student_tokenizer().dim == 14 and spec.proprio_dim == 10 and spec.eval_init_states == 50
    joints = np.random.default_rng(0).uniform(JOINT_LOW, JOINT_HIGH, size=(5, 14))
    np.testing.assert_allclose(unnormalize_actions(normalize_actions(joints)), joints, atol=1e-12)
    assert normalize_actions(JOINT_HIGH + 1.0).max() == 1.0  # out-of-range targets are clipped


def test_expert_teacher_logits_peak_at_the_expert_action_and_refuse_a_7d_tokenizer(tmp_path):
    from opd_core.checkpoint import load_policy
    from opd_core.envs.aloha.policy import AlohaExpertPolicy, save_expert_checkpoint
    from opd_core.envs.aloha.tasks import STATE_DIM
    from opd_core.envs.base import Observation
    from opd_core.tokenizer import ActionTokenizer

    tokenizer = ActionTokenizer.identity(14)
    state = np.zeros((3, STATE_DIM), np.float32)
    state[:, :14] = np.random.default_rng(1).uniform(-0.9, 0.9, size=(3, 14))
    obs = Observation(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 10), np.float32), ["x"] * 3, state=state)
    logits = AlohaExpertPolicy(tokenizer)(obs)
    assert logits.shape == (3, 14, 256)
    np.testing.assert_allclose(logits.exp().sum(-1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), tokenizer.encode(state[:, :14]))
    with pytest.raises(RuntimeError, match="privileged state"):
        AlohaExpertPolicy(tokenizer)(Observation(obs.image, obs.proprio, obs.instructions))
    with pytest.raises(ValueError, match="14 dimensions"):
        AlohaExpertPolicy(ActionTokenizer.identity(7))
    save_expert_checkpoint(tmp_path / "teacher")
    loaded = load_policy(tmp_path / "teacher")
    assert loaded.kind == "aloha_expert"
    torch.testing.assert_close(loaded(obs), logits)


# ============================================================================ with the extra
def _sample_box(seed: int) -> np.ndarray:
    """gym_aloha.utils.sample_box_pose's position, rewritten here (the test process has no gym-aloha)."""
    return np.random.RandomState(seed).uniform([0.0, 0.4, 0.05], [0.2, 0.6, 0.05])


def test_workers_run_under_the_extras_interpreter_and_resets_follow_gym_alohas_seeds(aloha):
    from opd_core.envs.aloha import aloha_python, make_aloha_env

    env = make_aloha_env(2, image_size=16, num_workers=1, cameras=False)
    try:
        obs = env.reset(["transfer_cube", "transfer_cube"], [3, 3])
        with open(f"/proc/{env.worker_pids[0]}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        assert argv[0].decode() == aloha_python() and argv[2].decode() == "opd_core.envs.aloha.worker"
        assert obs.image.shape == (2, 16, 16, 3) and obs.proprio.shape == (2, 10) and obs.state.shape == (2, 29)
        np.testing.assert_allclose(obs.state[0, 15:18], _sample_box(3), atol=1e-6)
        for _ in range(3):
            obs, success = env.step(obs.state[:, :14])  # the expert's own actions
        np.testing.assert_array_equal(obs.state[0], obs.state[1])  # two episodes from one seed stay identical
        assert not success.any()
        with pytest.raises(ValueError, match=r"\(2, 14\)"):
            env.step(np.zeros((2, 7)))
    finally:
        env.close()


def test_crashed_or_hung_worker_is_restarted_and_its_episode_replayed_or_marked(aloha):
    from opd_core.envs.aloha import make_aloha_env

    env = make_aloha_env(1, image_size=16, num_workers=1, cameras=False, max_retries=1, step_timeout=5.0)
    try:
        obs = env.reset(["insertion"], [0])
        obs, _ = env.step(obs.state[:, :14])
        action = obs.state[:, :14].copy()
        os.kill(env.worker_pids[0], signal.SIGKILL)  # crash mid-episode: replayed on a fresh worker
        after, success = env.step(action)
        assert [e["kind"] for e in env.events] == ["restart", "retry"]
        assert not env.failed[0] and not success[0]
        obs = env.reset(["insertion"], [0])  # the same episode without a crash ends in exactly the same state
        obs, _ = env.step(obs.state[:, :14])
        reference, _ = env.step(action)
        np.testing.assert_array_equal(after.proprio, reference.proprio)
        np.testing.assert_array_equal(after.state, reference.state)
        env.max_retries = 0
        os.kill(env.worker_pids[0], signal.SIGSTOP)  # hang: killed at its deadline, the episode marked failed
        started = time.perf_counter()
        frozen, success = env.step(action)
        assert time.perf_counter() - started < 60
        assert env.failed[0] and not success[0]
        assert [e["kind"] for e in env.events][-2:] == ["restart", "episode_failed"]
        np.testing.assert_array_equal(frozen.proprio, reference.proprio)
        env.reset(["insertion"], [1])
        assert not env.failed.any()
    finally:
        env.close()


def test_two_opd_steps_with_the_expert_teacher_then_an_eval_with_a_video(aloha, tmp_path):
    from extra_smoke import two_opd_steps
    from opd_core.cli import main
    from opd_core.envs.aloha.policy import save_expert_checkpoint
    from opd_core.envs.libero.pool import _LIVE
    from opd_core.video import read_video_info

    result, rows, videos = two_opd_steps(
        tmp_path,
        env="aloha",
        suite="aloha",
        task="transfer_cube",
        save_expert=save_expert_checkpoint,
        image_size=16,
        action_dim=14,
        policy_size={"proprio_dim": 10},
    )
    assert not _LIVE, "train() closes its ALOHA environments (their worker processes)"
    assert result.status == "finished" and result.step == 2
    steps = [row for row in rows if "train/loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:
        assert np.isfinite(row["train/loss"]) and np.isfinite(row["train/reverse_kl"])
        assert row["train/episode_length"] == 3.0
    keys = set().union(*rows)
    assert {"eval/seen_success", "eval/success/transfer_cube", "time/rollout_seconds"} <= keys
    assert any(key.startswith("train/reverse_kl/left") for key in keys)  # per-arm diagnostics of a 14-D policy
    assert videos
    info = read_video_info(tmp_path / "run" / videos[0]["path"])
    assert info["codec"] == "h264" and info["frames"] == 4

    # `opd eval` of the expert teacher: the fixed-seed protocol, seed 0, the full 300-step limit, a video
    out = tmp_path / "eval"
    args = ["eval", str(tmp_path / "teacher"), "--env", "aloha", "--suite", "aloha", "--tasks", "transfer_cube"]
    assert main([*args, "--init-states", "1", "--videos", "1", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["env"] == "aloha" and "seeds 0..n-1" in report["protocol"]
    assert report["per_task"] == {"transfer_cube": 1.0}, "the expert hands the cube over from seed 0"
    [video] = report["videos"]
    assert video["success"] and read_video_info(out / video["path"])["frames"] > 100


def test_expert_demos_in_the_hdf5_layout_load_back_for_sft(aloha, tmp_path):
    import h5py

    from opd_core.data import load_demos
    from opd_core.envs.aloha.demos import generate_expert_demos

    counts = generate_expert_demos(["transfer_cube"], 1, tmp_path, image_size=16, noise=0.01, num_envs=1)
    assert counts == {"transfer_cube": 1}, "the expert succeeds from seed 1000 with a little DART noise"
    demos = load_demos(tmp_path, 1, ["transfer_cube"])
    steps = len(demos)
    assert 100 < steps < 300 and demos.images.shape == (steps, 16, 16, 3)
    assert demos.proprio.shape == (steps, 10) and demos.actions.shape == (steps, 14)
    assert np.abs(demos.actions).max() <= 1.0 and demos.instructions[0].startswith("pick up the red cube")
    with h5py.File(tmp_path / "transfer_cube_demo.hdf5") as handle:
        obs = handle["data/demo_0/obs"]
        assert obs["ee_pos"].shape == (steps, 6) and obs["gripper_states"].shape == (steps, 4)
        assert json.loads(handle["data"].attrs["env_args"])["env_name"] == "aloha"
