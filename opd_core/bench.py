"""Benchmarks behind `opd bench sim` and `opd bench step` (figures as dicts; bench/README.md records results)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG


def simulator(batch: int = 64, steps: int = 400) -> dict:
    """Tabletop steps/s with rendering at `batch` environments on one core (random actions)."""
    torch.set_num_threads(1)
    tasks = CATALOG.suite_tasks("object")
    env = TabletopVecEnv(batch)
    env.reset([tasks[i % len(tasks)] for i in range(batch)], list(range(batch)))
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, batch, 7))
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    elapsed = time.perf_counter() - start
    return {
        "bench": "sim",
        "batch": batch,
        "steps": steps,
        "image": list(env.render().shape[1:]),
        "env_steps_per_second": batch * steps / elapsed,
        "target_env_steps_per_second": 20000,
    }


def training_step(
    batch_tasks: int = 8,
    steps: int = 3,
    group_size: int = 8,
    student: str = "",
    teacher: str = "",
    max_episode_steps: int = 0,
    **run_config,
) -> dict:
    """Seconds per OPD step split into rollout, labeling and update. Student and teacher default to freshly
    initialised small VLAs; pass checkpoint or transformers directories to measure other policies, and RunConfig
    fields in `run_config` (env, suite, tasks, image_size, ...) to measure another simulator."""
    from opd_core.checkpoint import save_checkpoint
    from opd_core.config import RunConfig
    from opd_core.policies import build_policy
    from opd_core.sinks import NullSink
    from opd_core.tokenizer import ActionTokenizer
    from opd_core.train import train

    rows: list[dict] = []

    class Collect(NullSink):
        def log(self, metrics, step):
            if "time/step_seconds" in metrics:
                rows.append(metrics)

    with tempfile.TemporaryDirectory() as tmp:
        for name, seed in (("student", 0), ("teacher", 1)):
            torch.manual_seed(seed)
            save_checkpoint(os.path.join(tmp, name), build_policy("small_vla", {}, ActionTokenizer.identity()), step=0)
        config = RunConfig(
            pipeline="opd",
            objective="reverse_kl",
            student_checkpoint=student or os.path.join(tmp, "student"),
            teacher_checkpoint=teacher or os.path.join(tmp, "teacher"),
            steps=steps + 1,
            batch_tasks=batch_tasks,
            group_size=group_size,
            eval_every=0,
            eval_init_states=0,
            save_every=0,
            max_episode_steps=max_episode_steps,
            out_dir=os.path.join(tmp, "run"),
            **run_config,
        )
        train(config, Collect())
    measured = rows[1:] or rows  # the first step pays one-off costs (allocations; LIBERO builds its simulators)
    mean = {
        key: float(np.mean([row[key] for row in measured]))
        for key in ("time/step_seconds", "time/rollout_seconds", "time/label_seconds", "time/update_seconds")
    }
    step = mean["time/step_seconds"]
    states = float(np.mean([row["train/episode_length"] for row in measured])) * batch_tasks * group_size
    return {
        "bench": "step",
        "batch_tasks": batch_tasks,
        "group_size": group_size,
        "torch_threads": torch.get_num_threads(),
        "states_per_step": states,
        "step_seconds": step,
        "first_step_seconds": rows[0]["time/step_seconds"],
        "measured_steps": len(measured),
        "rollout_share": mean["time/rollout_seconds"] / step,
        "label_share": mean["time/label_seconds"] / step,
        "update_share": mean["time/update_seconds"] / step,
        "target_label_share_at_most": 0.25,
    }
