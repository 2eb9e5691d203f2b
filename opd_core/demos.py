"""Generate expert demonstrations on a built-in simulator, the tabletop or the dual-arm twin (DART-style: noisy
execution, clean labels).

Executing the expert's action plus Gaussian noise while recording the clean expert action shows the learner
how to recover from small deviations; without it a cloned policy drifts off the expert's narrow path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opd_core.data import Episode, task_file_name, write_task_demos

DEMO_INIT_OFFSET = 1000
"""Demos start from initial states 1000+ so they never coincide with the evaluation states 0-49."""
NOISY_DIMS = {"tabletop": (0, 1, 2), "twin": (0, 1, 2, 7, 8, 9)}
"""Per built-in simulator the action dimensions the execution noise perturbs (each gripper's xyz)."""


def _builtin(env_name: str):
    """(simulator class, expert, catalogue) of a built-in simulator with a scripted expert."""
    if env_name == "tabletop":
        from opd_core.envs.tabletop.expert import expert_actions
        from opd_core.envs.tabletop.sim import TabletopVecEnv
        from opd_core.envs.tabletop.tasks import CATALOG

        return TabletopVecEnv, expert_actions, CATALOG
    if env_name == "twin":
        from opd_core.envs.twin.expert import expert_actions
        from opd_core.envs.twin.sim import TwinVecEnv
        from opd_core.envs.twin.tasks import CATALOG

        return TwinVecEnv, expert_actions, CATALOG
    raise ValueError(f"demos are generated on the built-in simulators {sorted(NOISY_DIMS)}, not {env_name!r}")


def generate_demos(
    tasks: list[str],
    num_demos: int,
    out_dir: str | Path,
    noise: float = 0.3,
    seed: int = 0,
    batch_size: int = 256,
    progress=None,
    env: str = "tabletop",
) -> dict[str, int]:
    """Write `num_demos` successful expert episodes per task of the built-in simulator `env` into `out_dir`;
    returns episodes per task."""
    out_dir = Path(out_dir)
    sim, expert, catalog = _builtin(env)
    rng = np.random.default_rng(seed)
    jobs = [(task, k) for task in tasks for k in range(num_demos)]
    episodes: dict[str, list[Episode]] = {task: [] for task in tasks}
    attempt = 0
    while jobs:
        batch, jobs = jobs[:batch_size], jobs[batch_size:]
        init_ids = [DEMO_INIT_OFFSET + k + attempt * num_demos for _, k in batch]
        results = _run_batch(
            sim(len(batch)), expert, [task for task, _ in batch], init_ids, noise, rng, NOISY_DIMS[env]
        )
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
        write_task_demos(out_dir / task_file_name(task), task, catalog.instruction(task), episodes[task], env)
    return {task: len(eps) for task, eps in episodes.items()}


def _run_batch(
    env,
    expert,
    tasks: list[str],
    init_ids: list[int],
    noise: float,
    rng: np.random.Generator,
    noisy_dims: tuple[int, ...],
) -> list[Episode | None]:
    obs = env.reset(tasks, init_ids)
    images, proprio, actions = [obs.image], [obs.proprio], []
    done_at = np.full(len(tasks), -1)
    for t in range(env.max_episode_steps):
        clean = expert(env)
        executed = clean.copy()
        executed[:, list(noisy_dims)] += rng.normal(0.0, noise, size=(len(tasks), len(noisy_dims)))
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
