"""Expert demonstrations on ALOHA in the project's HDF5 layout (`opd_core.data`: one `<task>_demo.hdf5` per task).

Episodes start from seeds 1000+ (never the evaluation seeds 0-49 nor the training draws 50-999). With `noise` > 0
the executed arm-joint actions get Gaussian noise (normalized units) while the clean expert action is recorded
(DART), so a cloned policy sees how to recover; grippers are executed clean. Only successful episodes are kept,
cut at their first success. `obs/ee_pos` holds both grip points, `obs/gripper_states` the four finger positions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from opd_core.data import Episode, task_file_name, write_task_demos
from opd_core.envs.aloha.tasks import ACTION_DIM, CATALOG, ENV_NAME

DEMO_SEED_OFFSET = 1000
ARM_DIMS = np.r_[0:6, 7:13]


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

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    env = make_aloha_env(num_envs, image_size=image_size)
    try:
        for task in tasks:
            kept: list[Episode] = []
            next_seed = DEMO_SEED_OFFSET
            while len(kept) < num_demos and next_seed < DEMO_SEED_OFFSET + num_demos * max_attempts:
                seeds = list(range(next_seed, next_seed + num_envs))
                next_seed += num_envs
                for episode in _run(env, task, seeds, noise, rng):
                    if episode is not None and len(kept) < num_demos:
                        kept.append(episode)
                        if progress is not None:
                            progress(1)
            if kept:
                write_task_demos(out_dir / task_file_name(task), task, CATALOG.instruction(task), kept, ENV_NAME)
            counts[task] = len(kept)
    finally:
        env.close()
    return counts


def _run(env, task: str, seeds: list[int], noise: float, rng: np.random.Generator) -> list[Episode | None]:
    n = len(seeds)
    obs = env.reset([task] * n, seeds)
    images, proprio, actions = [], [], []
    done_at = np.full(n, -1)
    for t in range(env.max_episode_steps):
        clean = obs.state[:, :ACTION_DIM].astype(np.float64)
        executed = clean.copy()
        if noise > 0:
            executed[:, ARM_DIMS] = np.clip(executed[:, ARM_DIMS] + rng.normal(0.0, noise, (n, 12)), -1.0, 1.0)
        images.append(obs.image)
        proprio.append(obs.proprio)
        actions.append(clean)
        obs, success = env.step(executed)
        done_at[(done_at < 0) & success & ~env.failed] = t + 1
        if ((done_at >= 0) | env.failed).all():
            break
    images_arr, proprio_arr, actions_arr = np.stack(images, 1), np.stack(proprio, 1), np.stack(actions, 1)
    return [
        Episode(images_arr[i, :end], proprio_arr[i, :end], actions_arr[i, :end]) if end > 0 else None
        for i, end in enumerate(done_at)
    ]
