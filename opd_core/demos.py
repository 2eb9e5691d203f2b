"""Generate expert demonstrations on the built-in tabletop (DART-style: noisy execution, clean labels).

Executing the expert's action plus Gaussian noise while recording the clean expert action shows the learner
how to recover from small deviations; without it a cloned policy drifts off the expert's narrow path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opd_core.data import Episode, task_file_name, write_task_demos
from opd_core.envs.tabletop.expert import expert_actions
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG

DEMO_INIT_OFFSET = 1000
"""Demos start from initial states 1000+ so they never coincide with the evaluation states 0-49."""


def generate_demos(
    tasks: list[str],
    num_demos: int,
    out_dir: str | Path,
    noise: float = 0.3,
    seed: int = 0,
    batch_size: int = 256,
    progress=None,
) -> dict[str, int]:
    """Write `num_demos` successful expert episodes per task into `out_dir`; returns episodes per task."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    jobs = [(task, k) for task in tasks for k in range(num_demos)]
    episodes: dict[str, list[Episode]] = {task: [] for task in tasks}
    attempt = 0
    while jobs:
        batch, jobs = jobs[:batch_size], jobs[batch_size:]
        init_ids = [DEMO_INIT_OFFSET + k + attempt * num_demos for _, k in batch]
        results = _run_batch([task for task, _ in batch], init_ids, noise, rng)
        failed = []
        for (task, k), episode in zip(batch, results):
            if episode is None:
                failed.append((task, k))
            else:
                episodes[task].append(episode)
        if progress is not None:
            progress(len(batch) - len(failed))
        if failed:
            attempt += 1
            if attempt > 20:
                raise RuntimeError(f"the expert keeps failing on {failed[:3]}")
            jobs.extend(failed)
    for task in tasks:
        write_task_demos(out_dir / task_file_name(task), task, CATALOG.instruction(task), episodes[task], "tabletop")
    return {task: len(eps) for task, eps in episodes.items()}


def _run_batch(tasks: list[str], init_ids: list[int], noise: float, rng: np.random.Generator) -> list[Episode | None]:
    env = TabletopVecEnv(len(tasks))
    obs = env.reset(tasks, init_ids)
    images, proprio, actions = [obs.image], [obs.proprio], []
    done_at = np.full(len(tasks), -1)
    for t in range(env.max_episode_steps):
        clean = expert_actions(env)
        executed = clean.copy()
        executed[:, :3] += rng.normal(0.0, noise, size=(len(tasks), 3))
        actions.append(clean)
        obs, success = env.step(executed)
        done_at[(done_at < 0) & success] = t + 1
        if (done_at >= 0).all():
            break
        images.append(obs.image)
        proprio.append(obs.proprio)
    images_arr, proprio_arr, actions_arr = np.stack(images, 1), np.stack(proprio, 1), np.stack(actions, 1)
    return [
        Episode(images_arr[i, :end], proprio_arr[i, :end], actions_arr[i, :end]) if end > 0 else None
        for i, end in enumerate(done_at)
    ]
