"""Expert demonstrations on LIBERO-Object, written in LIBERO's HDF5 layout (one `<task>_demo.hdf5` per task).

Episodes start from sampled initial states 1000+ (never the 50 fixed evaluation states). With `noise` > 0 the
executed xyz actions get Gaussian noise while the clean expert action is recorded (DART), so a cloned policy sees
how to recover from small deviations. Only successful episodes are kept (`opd_core.envs.expert_demos`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from opd_core.envs.expert_demos import Expert, write_expert_demos
from opd_core.envs.libero.expert import expert_actions
from opd_core.envs.libero.tasks import catalog

NOISY_DIMS = np.arange(3)
"""DART noise on the end effector's xyz; rotation and gripper stay clean."""


def generate_expert_demos(
    tasks: list[str],
    num_demos: int,
    out_dir: str | Path,
    *,
    image_size: int = 128,
    noise: float = 0.0,
    seed: int = 0,
    num_envs: int = 2,
    max_episode_steps: int = 0,
    max_attempts: int = 3,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write up to `num_demos` successful expert episodes per task; returns the episodes written per task."""
    from opd_core.envs.libero import make_libero_env

    expert = Expert(lambda obs: expert_actions(obs.state), NOISY_DIMS, catalog().instruction, "libero")
    env = make_libero_env(num_envs, image_size=image_size, max_episode_steps=max_episode_steps)
    try:
        return write_expert_demos(
            env, expert, tasks, num_demos, out_dir, noise=noise, seed=seed, max_attempts=max_attempts, progress=progress
        )
    finally:
        env.close()
