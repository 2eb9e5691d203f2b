"""Expert demonstrations on ALOHA in the project's HDF5 layout (`opd_core.data`: one `<task>_demo.hdf5` per task).

Episodes start from seeds 1000+ (never the evaluation seeds 0-49 nor the training draws 50-999). With `noise` > 0
the executed arm-joint actions get Gaussian noise (normalized units) while the clean expert action is recorded
(DART), so a cloned policy sees how to recover; grippers are executed clean. Only successful episodes are kept,
cut at their first success (`opd_core.envs.expert_demos`). `obs/ee_pos` holds both grip points,
`obs/gripper_states` the four finger positions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from opd_core.envs.aloha.tasks import ACTION_DIM, CATALOG, ENV_NAME
from opd_core.envs.expert_demos import Expert, write_expert_demos

ARM_DIMS = np.r_[0:6, 7:13]
"""Both arms' six joints; the two grippers (6 and 13) stay clean."""


def generate_expert_demos(
    tasks: list[str],
    num_demos: int,
    out_dir: str | Path,
    *,
    image_size: int = 64,
    noise: float = 0.0,
    seed: int = 0,
    num_envs: int = 2,
    max_attempts: int = 3,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write up to `num_demos` successful expert episodes per task; returns the episodes written per task."""
    from opd_core.envs.aloha import make_aloha_env

    expert = Expert(_expert_actions, ARM_DIMS, CATALOG.instruction, ENV_NAME)
    env = make_aloha_env(num_envs, image_size=image_size)
    try:
        return write_expert_demos(
            env, expert, tasks, num_demos, out_dir, noise=noise, seed=seed, max_attempts=max_attempts, progress=progress
        )
    finally:
        env.close()


def _expert_actions(obs) -> np.ndarray:
    """The scripted expert's action: the privileged state's first 14 entries (the simulator computes it each step)."""
    return obs.state[:, :ACTION_DIM].astype(np.float64)
