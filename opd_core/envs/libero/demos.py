"""Expert demonstrations on LIBERO-Object, written in LIBERO's HDF5 layout (one `<task>_demo.hdf5` per task).

Episodes start from sampled initial states 1000+ (never the 50 fixed evaluation states). With `noise` > 0 the
executed xyz actions get Gaussian noise while the clean expert action is recorded (DART), so a cloned policy sees
how to recover from small deviations. Only successful episodes are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from opd_core.data import Episode, task_file_name, write_task_demos
from opd_core.envs.libero.expert import expert_actions
from opd_core.envs.libero.tasks import catalog

DEMO_INIT_OFFSET = 1000


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

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    cat = catalog()
    counts: dict[str, int] = {}
    env = make_libero_env(num_envs, image_size=image_size, max_episode_steps=max_episode_steps)
    try:
        for task in tasks:
            kept: list[Episode] = []
            next_id = DEMO_INIT_OFFSET
            budget = num_demos * max_attempts
            while len(kept) < num_demos and next_id < DEMO_INIT_OFFSET + budget:
                init_ids = list(range(next_id, next_id + num_envs))
                next_id += num_envs
                for episode in _run(env, task, init_ids, noise, rng):
                    if episode is not None and len(kept) < num_demos:
                        kept.append(episode)
                        if progress is not None:
                            progress(1)
            if kept:
                write_task_demos(out_dir / task_file_name(task), task, cat.instruction(task), kept, "libero")
            counts[task] = len(kept)
    finally:
        env.close()
    return counts


def _run(env, task: str, init_ids: list[int], noise: float, rng: np.random.Generator) -> list[Episode | None]:
    n = len(init_ids)
    obs = env.reset([task] * n, init_ids)
    images, proprio, actions = [], [], []
    done_at = np.full(n, -1)
    for t in range(env.max_episode_steps):
        clean = expert_actions(obs.state)
        executed = clean.copy()
        if noise > 0:
            executed[:, :3] = np.clip(executed[:, :3] + rng.normal(0.0, noise, size=(n, 3)), -1.0, 1.0)
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
