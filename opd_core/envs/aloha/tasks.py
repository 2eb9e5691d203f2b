"""The ALOHA task catalogue and the adapter's action and state layout (plain numpy: imported on both sides of the
process boundary, by the training process and by the environment workers under `.venv-aloha`).

Two tasks of gym-aloha 0.1.5, one suite `aloha`:
- `transfer_cube` (gym id `gym_aloha/AlohaTransferCube-v0`): the right arm picks the red cube and hands it to the
  left arm; success when the left gripper holds it clear of the table (gym-aloha's reward 4).
- `insertion` (`gym_aloha/AlohaInsertion-v0`): the left arm picks the socket, the right arm the peg, and the peg
  goes into the socket until it touches the pin (reward 4).
Both end after 300 steps (gym-aloha's registered limit; 50 Hz control). The initial state `init_id` is gym-aloha's
reset seed: the object poses are `gym_aloha.utils.sample_*_pose(init_id)`, exactly as `env.reset(seed=init_id)`.
Evaluation uses seeds 0-49 and training draws from 50-999, like every simulator here.

Actions: 14-D in [-1, 1], per arm 6 joint targets then the gripper, mapped linearly onto `JOINT_LOW..JOINT_HIGH`
(absolute joint positions in rad; the gripper in gym-aloha's normalized 0 closed .. 1 open). The ranges are the
joints' control ranges narrowed to the tasks' workspace (the expert's episodes stay well inside them), so that
256 bins give 0.006-0.012 rad per bin (a coarser grid costs the insertion its precision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opd_core.envs.common import TaskCatalog

ENV_NAME = "aloha"
SUITE = "aloha"
MAX_EPISODE_STEPS = 300
ACTION_DIM = 14
PROPRIO_DIM = 10
"""Both grippers' grip points (xyz, left then right), then their finger positions (two per gripper, metres)."""

ARM_LOW = np.array([-0.8, -1.4, -0.4, -1.0, -1.0, -1.2])
ARM_HIGH = np.array([0.8, 0.5, 1.6, 1.0, 1.6, 1.8])
"""Waist, shoulder, elbow, forearm roll, wrist angle, wrist rotate (rad). The expert's joint targets over seeds
0-45 of both tasks span waist -0.37..0.43, shoulder -1.05..0.17, elbow -0.03..1.21, forearm roll -0.65..0.54,
wrist angle -0.68..1.16, wrist rotate -0.77..1.37; these ranges leave 0.2-0.4 rad beyond."""
JOINT_LOW = np.concatenate([ARM_LOW, [0.0], ARM_LOW, [0.0]])
JOINT_HIGH = np.concatenate([ARM_HIGH, [1.0], ARM_HIGH, [1.0]])

OBJECTS = 14
"""Object poses in the privileged state: up to two free bodies (xyz + wxyz quaternion), zero-padded."""
STATE_DIM = ACTION_DIM + 1 + OBJECTS
"""Privileged state: the scripted expert's action here (normalized, 14), the episode's time t / 300, object poses."""


def normalize_actions(joints: np.ndarray) -> np.ndarray:
    """Joint targets (rad; grippers 0..1) -> the adapter's actions in [-1, 1] (clipped)."""
    return np.clip(2.0 * (joints - JOINT_LOW) / (JOINT_HIGH - JOINT_LOW) - 1.0, -1.0, 1.0)


def unnormalize_actions(actions: np.ndarray) -> np.ndarray:
    """The adapter's actions in [-1, 1] -> gym-aloha's joint-position actions."""
    return JOINT_LOW + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (JOINT_HIGH - JOINT_LOW)


@dataclass(frozen=True)
class AlohaTask:
    name: str
    suite: str
    instruction: str
    gym_id: str
    xml: str


TASKS = [
    AlohaTask(
        "transfer_cube",
        SUITE,
        "pick up the red cube with the right arm and hand it over to the left arm",
        "gym_aloha/AlohaTransferCube-v0",
        "bimanual_viperx_transfer_cube.xml",
    ),
    AlohaTask(
        "insertion",
        SUITE,
        "pick up the socket with the left arm and the peg with the right arm and insert the peg into the socket",
        "gym_aloha/AlohaInsertion-v0",
        "bimanual_viperx_insertion.xml",
    ),
]
CATALOG: TaskCatalog[AlohaTask] = TaskCatalog(ENV_NAME, {SUITE: TASKS}, {SUITE: MAX_EPISODE_STEPS})
