"""Helpers the built-in numpy simulators share (tabletop, twin): the task catalogue, deterministic execution noise
and pixel scatter.

Importing this module has no side effects; it imports nothing else of the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np


class NamedTask(Protocol):
    """What the catalogue reads of a task (each simulator has its own richer Task dataclass)."""

    @property
    def name(self) -> str: ...

    @property
    def suite(self) -> str: ...

    @property
    def instruction(self) -> str: ...


TaskT = TypeVar("TaskT", bound=NamedTask)


class TaskCatalog(Generic[TaskT]):
    """Lookup of a simulator's suites and tasks (implements envs.base.TaskSuiteProvider)."""

    def __init__(self, env: str, suites: dict[str, list[TaskT]], suite_max_steps: Mapping[str, int]):
        self.env = env
        """The simulator's name, as the error messages say it (e.g. "tabletop")."""
        self.suites = suites
        self.tasks = {task.name: task for tasks in suites.values() for task in tasks}
        self.suite_max_steps = suite_max_steps
        """The default step limit of each suite."""

    def suite_tasks(self, suite: str) -> list[str]:
        if suite not in self.suites:
            raise KeyError(f"unknown {self.env} suite {suite!r}; known: {', '.join(self.suites)}")
        return [task.name for task in self.suites[suite]]

    def task(self, name: str) -> TaskT:
        if name not in self.tasks:
            raise KeyError(f"unknown {self.env} task {name!r}")
        return self.tasks[name]

    def instruction(self, task: str) -> str:
        return self.task(task).instruction

    def max_episode_steps(self, suite: str) -> int:
        return self.suite_max_steps[suite]

    def suite_of(self, task: str) -> str:
        return self.task(task).suite

    def reset_max_steps(self, num_envs: int, tasks: Sequence[str], init_ids: Sequence[int]) -> int:
        """Check a simulator's reset arguments (one task and init id per env) and return its step limit: the
        longest default of the suites of these tasks."""
        if len(tasks) != num_envs or len(init_ids) != num_envs:
            raise ValueError(f"reset needs {num_envs} tasks and init ids")
        return max(self.max_episode_steps(self.suite_of(task)) for task in tasks)


def hash_normal(seed: np.ndarray, t: int, dims: int) -> np.ndarray:
    """Deterministic standard-normal-ish noise [N, dims] from (episode seed, time step): splitmix64 hashing."""
    with np.errstate(over="ignore"):
        x = (
            seed.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
            + np.uint64(t * 7919 + 1) * np.uint64(0xBF58476D1CE4E5B9)
            + np.arange(dims, dtype=np.uint64)[None, :] * np.uint64(0x94D049BB133111EB)
        )
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(32)
    uniform = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    # Irwin-Hall with 2 uniforms, rescaled to unit variance: cheap, bounded, symmetric.
    u2 = ((x & np.uint64(0x7FF)).astype(np.float64) + 0.5) / 2048.0
    return (uniform + u2 - 1.0) * np.sqrt(6.0)


def scatter(image: np.ndarray, env: np.ndarray, row: np.ndarray, col: np.ndarray, colors: np.ndarray) -> None:
    """Paint pixels (env, row, col) of a batch of frames [N, H, W, 3] with `colors`, dropping those off the frame."""
    height, width = image.shape[1:3]
    inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    image[env[inside], row[inside], col[inside]] = colors[inside]


def square_offsets(half: int) -> np.ndarray:
    """Pixel offsets [(2*half+1)^2, 2] (row, col) of a filled square around a centre pixel."""
    grid = np.arange(-half, half + 1)
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
