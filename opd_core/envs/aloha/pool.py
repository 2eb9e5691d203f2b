"""`AlohaVecEnv`: ALOHA episodes stepped by a pool of worker processes under the extra's own interpreter.

It is the LIBERO pool (`opd_core.envs.libero.pool.LiberoVecEnv`: episodes dealt to workers by task, deadlines, a
dead or hung worker killed and replaced, its episodes replayed from their slot states or marked failed, succeeded
episodes frozen) with ALOHA's actions (14-D), catalogue, step limit and observation, and workers started as
`.venv-aloha/bin/python -m opd_core.envs.aloha.worker`. Only numpy arrays and plain Python values cross the pipe.
"""

from __future__ import annotations

import os

import numpy as np

from opd_core.envs.aloha import REPO_ROOT, aloha_python
from opd_core.envs.aloha.tasks import ACTION_DIM, CATALOG, MAX_EPISODE_STEPS, PROPRIO_DIM, STATE_DIM
from opd_core.envs.base import Observation
from opd_core.envs.libero.pool import LiberoVecEnv, _Worker


class AlohaVecEnv(LiberoVecEnv):
    """`VectorEnv` over gym-aloha: reset(tasks, init_ids = seeds) -> Observation, step(actions [N, 14] in [-1, 1])."""

    ACTION_DIM = ACTION_DIM
    NAME = "aloha"

    def __init__(self, num_envs: int, image_size: int = 64, max_episode_steps: int = 0, **options):
        options.setdefault("num_workers", int(os.environ.get("OPD_ALOHA_WORKERS", "0")))
        options.setdefault("wrist", False)
        super().__init__(num_envs, image_size=image_size, max_episode_steps=max_episode_steps, **options)

    def _make_catalog(self):
        return CATALOG

    def _default_max_steps(self, suites: list[str]) -> int:
        return MAX_EPISODE_STEPS

    def _new_worker(self, index: int) -> _Worker:
        path = os.environ.get("PYTHONPATH", "")
        return _Worker(
            index,
            self.image_size,
            int(self.cameras),
            self.start_timeout,
            python=aloha_python(),
            module="opd_core.envs.aloha.worker",
            log_name="opd-aloha",
            extra_env={"PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)},
        )

    def _blank_result(self) -> dict:
        size = self.image_size
        return {
            "image": np.zeros((size, size, 3), np.uint8),
            "proprio": np.zeros(PROPRIO_DIM, np.float32),
            "state": np.zeros(STATE_DIM, np.float32),
            "success": False,
            "slot_state": None,
        }

    def _observation(self) -> Observation:
        last = self._last
        if not last:
            size = self.image_size
            return Observation(
                np.zeros((0, size, size, 3), np.uint8),
                np.zeros((0, PROPRIO_DIM), np.float32),
                [],
                state=np.zeros((0, STATE_DIM), np.float32),
            )
        return Observation(
            np.stack([r["image"] for r in last]),
            np.stack([r["proprio"] for r in last]).astype(np.float32),
            [self.catalog.instruction(t) for t in self.tasks],
            state=np.stack([r["state"] for r in last]).astype(np.float32),
        )
