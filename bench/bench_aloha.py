"""ALOHA (gym-aloha extra) on this machine: environment steps/s of the worker pool, seconds per OPD step and its
split, and the scripted expert's success over fixed seeds (physics only, through the same pool and teacher path).

    .venv/bin/python bench/bench_aloha.py                        # steps/s (1, 2 workers) + one OPD step
    .venv/bin/python bench/bench_aloha.py --expert-seeds 50 --skip-opd --workers ""   # the expert's success

Prints one JSON object. Steps/s counts environment steps of all episodes together (the expert's actions, the top
camera at --image-size, or none with --no-cameras), after the reset. The expert runs greedily through the
`aloha_expert` teacher policy (its action rounded to the 256 bins a student acts in).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def steps_per_second(workers: int, envs_per_worker: int, steps: int, image_size: int, cameras: bool) -> dict:
    from opd_core.envs.aloha import make_aloha_env

    n = workers * envs_per_worker
    env = make_aloha_env(n, image_size=image_size, num_workers=workers, cameras=cameras)
    try:
        started = time.perf_counter()
        obs = env.reset(["transfer_cube"] * n, list(range(n)))
        first_reset = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(steps):
            obs, _ = env.step(obs.state[:, :14])
        elapsed = time.perf_counter() - started
    finally:
        env.close()
    return {
        "workers": workers,
        "episodes": n,
        "steps": steps,
        "image_size": image_size,
        "cameras": "top" if cameras else "none",
        "env_steps_per_second": n * steps / elapsed,
        "first_reset_seconds": first_reset,
    }


def expert_success(seeds: int, workers: int, tasks: list[str]) -> dict:
    """The expert through the teacher policy (greedy, binned), seeds 0..seeds-1 of each task, no rendering."""
    import torch

    from opd_core.envs.aloha import make_aloha_env
    from opd_core.envs.aloha.policy import AlohaExpertPolicy
    from opd_core.envs.aloha.tasks import ACTION_DIM, CATALOG, SUITE
    from opd_core.rollout import collect
    from opd_core.tokenizer import ActionTokenizer

    policy = AlohaExpertPolicy(ActionTokenizer.identity(ACTION_DIM))
    report = {"seeds": seeds, "per_task": {}, "mean_length": {}}
    started = time.perf_counter()
    for task in tasks or CATALOG.suite_tasks(SUITE):
        env = make_aloha_env(seeds, image_size=8, num_workers=workers, cameras=False)
        try:
            rollout = collect(policy, env, [task] * seeds, list(range(seeds)), 0.0, torch.Generator().manual_seed(0))
            failed = int(env.failed.sum())
        finally:
            env.close()
        report["per_task"][task] = float(np.mean(rollout.success))
        report["mean_length"][task] = float(np.mean(rollout.lengths))
        report.setdefault("failed_episodes", {})[task] = failed
        print(json.dumps({task: report["per_task"][task]}), file=sys.stderr, flush=True)
    report["seconds"] = time.perf_counter() - started
    return report


def opd_step_seconds(steps: int, image_size: int, task: str) -> dict:
    from opd_core.bench import training_step

    figures = training_step(1, steps, group_size=2, env="aloha", suite="aloha", tasks=[task], image_size=image_size)
    return {**figures, "image_size": image_size, "task": task, "max_episode_steps": 300}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts (empty: skip)")
    parser.add_argument("--envs-per-worker", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30, help="environment steps per measurement")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--no-cameras", action="store_true", help="physics (and the expert's IK) only")
    parser.add_argument("--opd-steps", type=int, default=1, help="measured OPD steps (after one warm-up step)")
    parser.add_argument("--opd-task", default="transfer_cube")
    parser.add_argument("--skip-opd", action="store_true")
    parser.add_argument("--expert-seeds", type=int, default=0, help="also run the expert on seeds 0..N-1 per task")
    parser.add_argument("--expert-workers", type=int, default=2)
    parser.add_argument("--expert-tasks", default="", help="comma-separated tasks (default: both)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    report: dict = {
        "bench": "aloha",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "scaling": [],
    }
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        report["scaling"].append(
            steps_per_second(workers, args.envs_per_worker, args.steps, args.image_size, not args.no_cameras)
        )
        print(json.dumps(report["scaling"][-1]), file=sys.stderr, flush=True)
    if args.expert_seeds:
        tasks = [t for t in args.expert_tasks.split(",") if t]
        report["expert"] = expert_success(args.expert_seeds, args.expert_workers, tasks)
    if not args.skip_opd:
        report["opd_step"] = opd_step_seconds(args.opd_steps, args.image_size, args.opd_task)
    report["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
