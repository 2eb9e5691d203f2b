"""The environment interface every simulator implements (the built-in tabletop and twin, LIBERO, ALOHA), and its
registry entry.

A `VectorEnv` advances a batch of episodes together. Observations are batched numpy arrays plus the instruction
strings, so that any policy (built-in or transformers) can consume them. An `EnvSpec` is what an environment
registers under its name in `opd_core.registry`: how to build it, its task catalogue, and the properties the
training loop and the evaluation ask about. This module imports nothing else of the project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from opd_core.tokenizer import ActionTokenizer


@dataclass
class Observation:
    image: np.ndarray
    """Agent-view RGB, uint8 [N, H, W, 3]."""
    proprio: np.ndarray
    """Proprioception float32 [N, 5 per arm]: end-effector xyz and the two gripper finger positions."""
    instructions: list[str]
    """One natural-language instruction per environment."""
    state: np.ndarray | None = None
    """Privileged simulator state float32 [N, S] (object poses, grasp flags) for scripted teachers that label the
    student's states; learned policies never read it. None when the simulator provides none."""

    def __len__(self) -> int:
        return len(self.instructions)

    def take(self, index: np.ndarray) -> Observation:
        return Observation(
            self.image[index],
            self.proprio[index],
            [self.instructions[i] for i in index],
            None if self.state is None else self.state[index],
        )

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
        """Apply continuous actions [N, D] (D = 7; 14 for two arms); return the next observation and the success
        flags [N] (bool)."""

    def close(self) -> None:
        """Release processes or renderers."""


class TaskSuiteProvider(Protocol):
    def suite_tasks(self, suite: str) -> list[str]:
        """Task names of a suite."""

    def instruction(self, task: str) -> str:
        """The task's natural-language instruction."""

    def max_episode_steps(self, suite: str) -> int:
        """The suite's default step limit."""


@dataclass(frozen=True)
class EnvSpec:
    """An environment as the registry knows it (`opd_core.registry.ENVS`)."""

    make: Callable[..., VectorEnv]
    """`make(num_envs, image_size=..., max_episode_steps=...)` -> a `VectorEnv` (raises `EnvironmentUnavailable`
    with the install command when an optional extra is missing)."""
    catalog: Callable[[], TaskSuiteProvider]
    """The task catalogue: suites, tasks, instructions, step limits."""
    evaluation_protocol: str = "fixed_init_states"
    """Name of the evaluation protocol (`opd_core.registry.EVAL_PROTOCOLS`) that `opd_core.evaluate` runs."""
    fresh_student_tokenizer: Callable[[], ActionTokenizer] | None = None
    """The action tokenizer of a fresh (untrained) student; None: fit the action statistics on the demos."""
    proprio_dim: int = 5
    """Width of `Observation.proprio` (5 per gripper), the input size a fresh student is built with."""
    eval_init_states: int = 10
    """Initial states per task `opd eval` runs by default."""
    protocol_note: str = ""
    """What `opd eval` reports as its protocol (empty: none)."""
    release_rollout_envs_before_eval: bool = False
    """True when the evaluation builds its own simulators and the training rollouts' must be closed first (LIBERO:
    GBs per simulator, never hold two sets)."""
