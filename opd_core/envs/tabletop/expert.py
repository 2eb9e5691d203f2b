"""The scripted expert: solves every tabletop task from privileged state (positions, grasp, goals).

It is a stateless function of the simulator state, so it can label any state (DART-style noisy demos, or as an
oracle in tests): hover to the goal block, descend, close, carry at hover height, descend, open.
"""

from __future__ import annotations

import numpy as np

from opd_core.envs.tabletop.sim import TabletopVecEnv

HOVER_Z = 0.4
ALIGN_RADIUS = 0.08
CLOSE_HEIGHT, CLOSE_RADIUS = 0.06, 0.06
RELEASE_HEIGHT = 0.2


def expert_actions(env: TabletopVecEnv) -> np.ndarray:
    """Continuous 7-D expert actions [N, 7] in [-1, 1] for the current state of every environment."""
    n = env.num_envs
    rows = np.arange(n)
    satisfied = env.goals_satisfied()
    finished = satisfied.all(axis=1)
    current = np.argmin(satisfied, axis=1)  # first goal not yet satisfied
    target_obj = env.goal_obj[rows, current]
    target_obj_xy = env.obj_xy[rows, np.clip(target_obj, 0, None)]
    goal_xy = env.goal_xy[rows, current]

    holding_target = env.held == target_obj
    holding_other = (env.held >= 0) & ~holding_target
    carrying = holding_target
    destination = np.where(carrying[:, None], goal_xy, target_obj_xy)
    delta = destination - env.gripper[:, :2]
    distance = np.linalg.norm(delta, axis=1)
    aligned = distance < ALIGN_RADIUS
    low_z = np.where(carrying, 0.1, 0.0)
    target_z = np.where(aligned, low_z, HOVER_Z)

    actions = np.zeros((n, 7))
    actions[:, :2] = np.clip(delta / 0.1, -1.0, 1.0)
    actions[:, 2] = np.clip((target_z - env.gripper[:, 2]) / 0.2, -1.0, 1.0)

    grasp_ready = (env.gripper[:, 2] < CLOSE_HEIGHT) & (distance < CLOSE_RADIUS)
    release_ready = (env.gripper[:, 2] < RELEASE_HEIGHT) & (distance < CLOSE_RADIUS)
    missed_grasp = env.closed & (env.held < 0)
    close = np.where(carrying, ~release_ready, grasp_ready & ~missed_grasp)
    close &= ~holding_other & ~finished
    actions[:, 6] = np.where(close, 1.0, -1.0)
    actions[finished, :6] = 0.0
    return actions
