"""Benchmarks behind `opd bench sim` and `opd bench step` (figures as dicts; bench/README.md records results)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from opd_core.registry import env_spec, make_env, task_catalog

SIM_SUITES = {"tabletop": "object", "twin": "twin"}
"""The suite whose tasks `simulator` resets its environments to, per built-in simulator."""


def simulator(batch: int = 64, steps: int = 400, env: str = "tabletop") -> dict:
    """Steps/s of a built-in simulator (tabletop or twin) with rendering at `batch` environments on one core
    (random actions)."""
    torch.set_num_threads(1)
    if env not in SIM_SUITES:
        raise ValueError(f"bench sim measures the built-in simulators {sorted(SIM_SUITES)}, not {env!r}")
    tasks = task_catalog(env).suite_tasks(SIM_SUITES[env])
    sim = make_env(env, batch)
    sim.reset([tasks[i % len(tasks)] for i in range(batch)], list(range(batch)))
    action_dim = env_spec(env).fresh_student_tokenizer().dim
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, batch, action_dim))
    start = time.perf_counter()
    for action in actions:
        sim.step(action)
    elapsed = time.perf_counter() - start
    return {
        "bench": "sim",
        "env": env,
        "batch": batch,
        "steps": steps,
        "image": list(sim.render().shape[1:]),
        "action_dim": action_dim,
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
            spec = env_spec(run_config.get("env", "tabletop"))  # LIBERO has no native range: 7-D identity bins
            tokenizer = spec.fresh_student_tokenizer() if spec.fresh_student_tokenizer else ActionTokenizer.identity()
            policy = build_policy("small_vla", {"proprio_dim": spec.proprio_dim}, tokenizer)
            save_checkpoint(os.path.join(tmp, name), policy, step=0)
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
