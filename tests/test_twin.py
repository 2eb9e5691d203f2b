"""The dual-arm `twin` simulator: registry entry, the expert on every task, coordination, determinism, rendering."""

from __future__ import annotations

import numpy as np
import pytest

from opd_core.envs.twin.expert import expert_actions
from opd_core.envs.twin.sim import GRIPPER_RGB, KIND_RGB, LIFT_Z, TwinVecEnv, init_state
from opd_core.envs.twin.tasks import CATALOG, REACH_X, shape
from opd_core.registry import env_spec, make_env, task_catalog

TWIN_TASKS = CATALOG.suite_tasks("twin")
EVAL_INIT_STATES = list(range(50))
COORDINATION_TASKS = [t for t in TWIN_TASKS if t.split("/")[1] not in ("place_empty_cup", "beat_block_hammer")]
"""Tasks no single arm can solve (objects on both halves, a handover across the table, or a heavy object)."""


def _run_expert(
    tasks: list[str], init_ids: list[int], *, frozen_arm: int | None = None, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Success flags and episode lengths of the expert (optionally with one arm frozen, or DART noise)."""
    rng = np.random.default_rng(seed)
    env = TwinVecEnv(len(tasks))
    env.reset(tasks, init_ids)
    done = np.zeros(len(tasks), dtype=bool)
    lengths = np.zeros(len(tasks), dtype=np.int64)
    for _ in range(env.max_episode_steps):
        actions = expert_actions(env)
        if noise:
            actions[:, [0, 1, 2, 7, 8, 9]] += rng.normal(0.0, noise, size=(len(tasks), 6))
        if frozen_arm is not None:
            actions[:, 7 * frozen_arm : 7 * frozen_arm + 7] = 0.0
        _, success = env.step(actions)
        lengths[~done] += 1
        done |= success
    return done, lengths


def test_registered_by_name_with_fourteen_dim_actions_and_two_arm_proprio():
    spec = env_spec("twin")
    assert spec.fresh_student_tokenizer().dim == 14 and spec.proprio_dim == 10
    catalog = task_catalog("twin")
    assert catalog.suite_tasks("twin") == TWIN_TASKS and len(TWIN_TASKS) == 10
    for name in ("pick_dual_bottles", "place_empty_cup", "handover_block", "stack_bowls_two", "beat_block_hammer"):
        assert f"twin/{name}" in TWIN_TASKS
    assert len(catalog.suite_tasks("pretrain")) >= 50 and catalog.suite_tasks("unseen")

    def shapes(suite: str) -> set[tuple[str, ...]]:
        return {shape(t) for t in CATALOG.suites[suite]}

    assert not shapes("pretrain") & (shapes("unseen") | shapes("twin"))  # held-out compositions stay held out
    assert not set(CATALOG.suite_tasks("pretrain")) & set(TWIN_TASKS)
    env = make_env("twin", 3, image_size=64)
    obs = env.reset(TWIN_TASKS[:3], [0, 1, 2])
    assert obs.image.shape == (3, 64, 64, 3) and obs.image.dtype == np.uint8
    assert obs.proprio.shape == (3, 10) and obs.proprio.dtype == np.float32
    assert obs.instructions == [catalog.instruction(t) for t in TWIN_TASKS[:3]]
    with pytest.raises(ValueError, match=r"twin actions are \[3, 14\]"):
        env.step(np.zeros((3, 7)))
    with pytest.raises(KeyError, match="unknown twin suite"):
        catalog.suite_tasks("nope")


def test_expert_solves_every_twin_task_from_the_evaluation_states():
    tasks = [t for t in TWIN_TASKS for _ in EVAL_INIT_STATES]
    done, lengths = _run_expert(tasks, EVAL_INIT_STATES * len(TWIN_TASKS))
    per_task = done.reshape(len(TWIN_TASKS), -1).mean(axis=1)
    failing = {task: rate for task, rate in zip(TWIN_TASKS, per_task, strict=True) if rate < 1.0}
    assert not failing, f"expert success below 100% over init states 0-49: {failing}"
    assert lengths.min() > 5  # nothing is solved at reset


def test_expert_solves_pretraining_and_unseen_tasks_and_recovers_from_dart_noise():
    tasks = [t for suite in ("pretrain", "unseen") for t in CATALOG.suite_tasks(suite) for _ in range(3)]
    done, _ = _run_expert(tasks, [1000 + k for _ in range(len(tasks) // 3) for k in range(3)])
    assert done.all(), sorted({t for t, ok in zip(tasks, done, strict=True) if not ok})
    tasks = [t for t in TWIN_TASKS for _ in range(10)]
    noisy, _ = _run_expert(tasks, [1000 + k for _ in TWIN_TASKS for k in range(10)], noise=0.3)
    assert noisy.mean() >= 0.95  # demos execute noisy actions (DART) and keep only successful episodes


def test_one_arm_alone_cannot_solve_the_coordination_tasks():
    tasks = [t for t in COORDINATION_TASKS for _ in range(10)]
    init_ids = list(range(10)) * len(COORDINATION_TASKS)
    for frozen in (0, 1):
        done, _ = _run_expert(tasks, init_ids, frozen_arm=frozen)
        assert not done.any(), sorted({t for t, ok in zip(tasks, done, strict=True) if ok})
    single = [t for t in TWIN_TASKS if t not in COORDINATION_TASKS]
    done_left, _ = _run_expert([t for t in single for _ in range(10)], list(range(10)) * len(single), frozen_arm=1)
    done_right, _ = _run_expert([t for t in single for _ in range(10)], list(range(10)) * len(single), frozen_arm=0)
    assert (done_left | done_right).all()  # the one-arm tasks are solved by the arm on the object's side
    assert done_left.any() and done_right.any()


def test_a_heavy_pot_does_not_move_with_one_gripper_and_lifts_with_two():
    env = TwinVecEnv(1)
    env.reset(["twin/grab_roller"], [0])
    for _ in range(80):
        _, success = env.step(expert_actions(env))
        if success[0]:
            break
    assert success[0] and env.obj_z[0, 0] >= LIFT_Z and (env.held[0] == 0).all()
    env.reset(["twin/grab_roller"], [0])
    start = env.obj_xy[0, 0].copy()
    grasped = False
    for _ in range(60):  # the left arm grasps its handle and pulls up and away: the roller stays, the grip slips
        actions = expert_actions(env)
        actions[0, 7:] = 0.0
        grasped |= bool(env.held[0, 0] == 0)
        if grasped:
            actions[0, :7] = (1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        env.step(actions)
    assert grasped and np.allclose(env.obj_xy[0, 0], start) and env.obj_z[0, 0] == 0.0 and env.held[0, 0] == -1


def test_each_arm_stays_within_its_reach():
    env = TwinVecEnv(4)
    env.reset(TWIN_TASKS[:4], [0, 1, 2, 3])
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = rng.uniform(-1, 1, size=(4, 14))
        actions[:, 0], actions[:, 7] = 1.0, -1.0  # push the left arm right and the right arm left
        env.step(actions)
    for arm, (low, high) in enumerate(REACH_X):
        assert (env.arm[:, arm, 0] >= low).all() and (env.arm[:, arm, 0] <= high).all()
    assert np.allclose(env.arm[:, 0, 0], REACH_X[0][1]) and np.allclose(env.arm[:, 1, 0], REACH_X[1][0])


def test_an_episode_is_determined_by_its_initial_state():
    assert init_state("twin/handover_block", 7) == init_state.__wrapped__("twin/handover_block", 7)
    assert init_state("twin/handover_block", 7) != init_state("twin/handover_block", 8)
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(30, 1, 14))
    runs = []
    for batch_tasks, index in ((["twin/handover_block"], 0), (["twin/lift_pot", "twin/handover_block"], 1)):
        env = TwinVecEnv(len(batch_tasks))
        obs = env.reset(batch_tasks, [7] * len(batch_tasks))
        frames, proprio = [obs.image[index]], [obs.proprio[index]]
        for step_actions in actions:  # the same episode alone or next to another: identical
            padded = np.zeros((len(batch_tasks), 14))
            padded[index] = step_actions[0]
            obs, _ = env.step(padded)
            frames.append(obs.image[index])
            proprio.append(obs.proprio[index])
        runs.append((np.stack(frames), np.stack(proprio)))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0][0], runs[0][0][-1])  # and the frames do show the arms moving


def test_rendering_shows_both_grippers_and_the_objects():
    env = TwinVecEnv(1, image_size=64)
    obs = env.reset(["twin/pick_dual_bottles"], [0])

    def pixels(image: np.ndarray, rgb) -> np.ndarray:
        return np.argwhere((image == np.array(rgb, dtype=np.uint8)).all(-1))

    left_open, right_open = pixels(obs.image[0], GRIPPER_RGB[0, 0]), pixels(obs.image[0], GRIPPER_RGB[1, 0])
    assert len(left_open) and len(right_open) and left_open[:, 1].max() < 32 <= right_open[:, 1].min()
    for kind, xy in zip(env.obj_kind[0, :2], env.obj_xy[0, :2], strict=True):  # each bottle drawn where it stands
        row, col = env._to_pixels(xy)
        assert (obs.image[0, row, col] == KIND_RGB[kind]).all()
    actions = np.zeros((1, 14))
    actions[0, 1], actions[0, 13] = 1.0, 1.0  # the left arm moves back, the right gripper closes
    obs, _ = env.step(actions)
    moved = pixels(obs.image[0], GRIPPER_RGB[0, 0])
    assert moved[:, 0].mean() < left_open[:, 0].mean() - 2  # image rows grow towards the front
    assert not len(pixels(obs.image[0], GRIPPER_RGB[1, 0])) and len(pixels(obs.image[0], GRIPPER_RGB[1, 1]))
