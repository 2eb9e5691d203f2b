"""Tiny configs, demos and checkpoints shared by the core tests (small enough for a 2-core CI machine)."""

from __future__ import annotations

from pathlib import Path

from opd_core.config import RunConfig
from opd_core.demos import generate_demos
from opd_core.envs.tabletop.tasks import CATALOG

TASKS = CATALOG.suite_tasks("object")[:2]
UNSEEN = CATALOG.suite_tasks("unseen")[:1]
TINY_POLICY = {"policy_width": 4, "policy_hidden": 32, "policy_input_size": 16}


def tiny_config(out_dir: Path, **changes) -> RunConfig:
    base = dict(
        name="tiny",
        suite="object",
        tasks=TASKS,
        unseen_tasks=UNSEEN,
        steps=2,
        batch_tasks=2,
        group_size=2,
        max_episode_steps=8,
        eval_every=2,
        eval_init_states=1,
        videos_per_eval=1,
        save_every=1,
        minibatch_size=64,
        updates_per_step=1,
        sft_batch_size=32,
        out_dir=str(out_dir),
        **TINY_POLICY,
    )
    base.update(changes)
    return RunConfig.from_dict(base).validate()


def make_demos(folder: Path, num: int = 2) -> Path:
    generate_demos(TASKS, num, folder, noise=0.3, seed=0)
    return folder
