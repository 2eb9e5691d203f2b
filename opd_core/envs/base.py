"""The environment interface every simulator implements (the built-in tabletop, LIBERO).

A `VectorEnv` advances a batch of episodes together. Observations are batched numpy arrays plus the instruction
strings, so that any policy (built-in or transformers) can consume them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Observation:
    image: np.ndarray
    """Agent-view RGB, uint8 [N, H, W, 3]."""
    proprio: np.ndarray
    """Proprioception float32 [N, 5]: end-effector xyz and the two gripper finger positions."""
    instructions: list[str]
    """One natural-language instruction per environment."""
    state: np.ndarray | None = None
    """Privileged simulator state float32 [N, S] (object poses, grasp flags) for scripted teachers that label the
    student's states; learned policies never read it. None when the simulator provides none."""

    def __len__(self) -> int:
        return len(self.instructions)

    def take(self, index: np.ndarray) -> "Observation":
        return Observation(self.image[index], self.proprio[index], [self.instructions[i] for i in index],
                           None if self.state is None else self.state[index])

    def frame(self, index: int) -> np.ndarray:
        """What a rollout video shows of environment `index` (uint8 [H, W, 3])."""
        return self.image[index]


class VectorEnv(Protocol):
    num_envs: int
    max_episode_steps: int
    failed: np.ndarray
    """bool [N]: episodes lost to simulator failures since the last reset (frozen, never successful)."""

    def reset(self, tasks: list[str], init_ids: list[int]) -> Observation:
        """Start one episode per environment from the task's fixed initial state `init_id`."""

    def step(self, actions: np.ndarray) -> tuple[Observation, np.ndarray]:
        """Apply continuous actions [N, 7]; return the next observation and the success flags [N] (bool)."""

    def close(self) -> None:
        """Release processes or renderers."""


class TaskSuiteProvider(Protocol):
    def suite_tasks(self, suite: str) -> list[str]:
        """Task names of a suite."""

    def instruction(self, task: str) -> str:
        """The task's natural-language instruction."""

    def max_episode_steps(self, suite: str) -> int:
        """The suite's default step limit."""


def make_env(env_name: str, num_envs: int, image_size: int = 64, max_episode_steps: int = 0) -> VectorEnv:
    """Build a vectorized simulator by name (libero is imported lazily: it is an optional extra)."""
    if env_name == "tabletop":
        from opd_core.envs.tabletop.sim import TabletopVecEnv

        return TabletopVecEnv(num_envs, image_size=image_size, max_episode_steps=max_episode_steps)
    if env_name == "libero":
        from opd_core.envs.libero import make_libero_env

        return make_libero_env(num_envs, image_size=image_size, max_episode_steps=max_episode_steps)
    raise ValueError(f"unknown env {env_name!r}")


def task_catalog(env_name: str) -> TaskSuiteProvider:
    if env_name == "tabletop":
        from opd_core.envs.tabletop import tasks

        return tasks.CATALOG
    if env_name == "libero":
        from opd_core.envs.libero import catalog

        return catalog()
    raise ValueError(f"unknown env {env_name!r}")
