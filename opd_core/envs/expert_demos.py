"""Expert demonstrations from a simulator run in environment worker processes (the LIBERO and ALOHA extras),
written in the project's HDF5 layout (`opd_core.data`: one `<task>_demo.hdf5` per task).

Episodes start from initial states (or seeds) 1000 and up, never the evaluation states 0-49 nor the training draws
below 1000. With `noise` > 0 the executed actions get Gaussian noise on the expert's noisy dimensions while the clean
expert action is recorded (DART), so a cloned policy sees how to recover. Only successful episodes are kept, cut at
their first success; a slot whose simulator failed is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opd_core.data import Episode, task_file_name, write_task_demos
from opd_core.envs.base import Observation

FIRST_DEMO_STATE = 1000
"""The first initial state (or seed) of a demo episode."""


@dataclass(frozen=True)
class Expert:
    """What a simulator's demos need of its privileged expert."""

    actions: Callable[[Observation], np.ndarray]
    """Clean expert actions (N x action_dim, normalized) from the observation's privileged state."""
    noisy_dims: np.ndarray
    """The action dimensions that get DART noise (grippers usually stay clean)."""
    instruction: Callable[[str], str]
    """A task's language instruction."""
    env_name: str
    """Recorded in the demo files."""


def write_expert_demos(
    env,
    expert: Expert,
    tasks: list[str],
    num_demos: int,
    out_dir: str | Path,
    *,
    noise: float = 0.0,
    seed: int = 0,
    max_attempts: int = 3,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write up to `num_demos` successful episodes per task from `env` (opened and closed by the caller), trying at
    most `num_demos * max_attempts` initial states per task; returns the episodes written per task."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for task in tasks:
        kept: list[Episode] = []
        next_state = FIRST_DEMO_STATE
        while len(kept) < num_demos and next_state < FIRST_DEMO_STATE + num_demos * max_attempts:
            states = list(range(next_state, next_state + env.num_envs))
            next_state += env.num_envs
            for episode in _run(env, expert, task, states, noise, rng):
                if episode is not None and len(kept) < num_demos:
                    kept.append(episode)
                    if progress is not None:
                        progress(1)
        if kept:
            write_task_demos(out_dir / task_file_name(task), task, expert.instruction(task), kept, expert.env_name)
        counts[task] = len(kept)
    return counts


def _run(env, expert: Expert, task: str, states: list[int], noise: float, rng) -> list[Episode | None]:
    n = len(states)
    obs = env.reset([task] * n, states)
    images, proprio, actions = [], [], []
    done_at = np.full(n, -1)
    dims = expert.noisy_dims
    for t in range(env.max_episode_steps):
        clean = expert.actions(obs)
        executed = clean.copy()
        if noise > 0:
            executed[:, dims] = np.clip(executed[:, dims] + rng.normal(0.0, noise, (n, len(dims))), -1.0, 1.0)
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
