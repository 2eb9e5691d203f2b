"""LIBERO throughput on this machine: environment steps/s against the number of worker processes, and seconds per
OPD step at B=1, G=2 (tiny small-VLA student and teacher, so the figure is the simulator's cost).

    .venv/bin/python bench/bench_libero.py                       # workers 1,2; OPD step at the suite's horizon
    .venv/bin/python bench/bench_libero.py --workers 1,2,4,8 --envs-per-worker 2 --skip-opd

Prints one JSON object. Steps/s counts environment steps of all episodes together (random actions, both cameras
rendered at --image-size), after the reset; build and reset times are reported separately.
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

TASK = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"


def steps_per_second(
    workers: int, envs_per_worker: int, steps: int, image_size: int, cameras: bool, wrist: bool
) -> dict:
    from opd_core.envs.libero import make_libero_env

    n = workers * envs_per_worker
    env = make_libero_env(n, image_size=image_size, num_workers=workers, cameras=cameras, wrist=wrist)
    try:
        started = time.perf_counter()
        env.reset([TASK] * n, list(range(n)))
        first_reset = time.perf_counter() - started
        started = time.perf_counter()
        env.reset([TASK] * n, list(range(n, 2 * n)))
        warm_reset = time.perf_counter() - started
        rng = np.random.default_rng(0)
        actions = rng.uniform(-0.3, 0.3, size=(steps, n, 7))
        actions[..., 6] = -1.0
        started = time.perf_counter()
        for action in actions:
            env.step(action)
        elapsed = time.perf_counter() - started
    finally:
        env.close()
    return {
        "workers": workers,
        "episodes": n,
        "steps": steps,
        "image_size": image_size,
        "cameras": ("agentview+wrist" if wrist else "agentview") if cameras else "none",
        "env_steps_per_second": n * steps / elapsed,
        "first_reset_seconds": first_reset,
        "warm_reset_seconds": warm_reset,
    }


def opd_step_seconds(steps: int, max_episode_steps: int, image_size: int, wrist: bool) -> dict:
    from opd_core.bench import training_step

    os.environ["OPD_LIBERO_WRIST"] = "1" if wrist else "0"  # the training loop builds its env through make_env
    figures = training_step(
        1,
        steps,
        group_size=2,
        max_episode_steps=max_episode_steps,
        env="libero",
        suite="libero_object",
        tasks=[TASK],
        image_size=image_size,
    )
    return {
        **figures,
        "image_size": image_size,
        "cameras": "agentview+wrist" if wrist else "agentview",
        "max_episode_steps": max_episode_steps or 280,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    parser.add_argument("--envs-per-worker", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40, help="environment steps per measurement")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--no-cameras", action="store_true", help="physics only")
    parser.add_argument("--no-wrist", action="store_true", help="agent view only (the wrist camera is not rendered)")
    parser.add_argument("--opd-wrist", action="store_true", help="render the wrist camera in the OPD step too")
    parser.add_argument("--opd-steps", type=int, default=2, help="measured OPD steps (after one warm-up step)")
    parser.add_argument("--opd-max-episode-steps", type=int, default=0, help="0: the suite's standard 280")
    parser.add_argument("--skip-opd", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    report: dict = {
        "bench": "libero",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "scaling": [],
    }
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        report["scaling"].append(
            steps_per_second(
                workers, args.envs_per_worker, args.steps, args.image_size, not args.no_cameras, not args.no_wrist
            )
        )
        print(json.dumps(report["scaling"][-1]), file=sys.stderr, flush=True)
    if not args.skip_opd:
        report["opd_step"] = opd_step_seconds(
            args.opd_steps, args.opd_max_episode_steps, args.image_size, args.opd_wrist
        )
    report["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
