"""Data-parallel scaling on this machine: tabletop env steps/s and seconds per OPD step against the number of ranks.

    .venv/bin/python bench/bench_distributed.py                     # ranks 1,2; B=4 x G=4 OPD steps
    .venv/bin/python bench/bench_distributed.py --ranks 1,2,4 --batch-tasks 8 --group-size 8

Prints one JSON object. "sim": the global batch of `--sim-batch` environments split over N processes stepping at
once (random actions, 64x64 render each step); env steps/s = all environments' steps / the slowest process's time.
"step": `opd_core.bench.training_step` (fresh default small VLAs, reverse_kl, every episode at the suite's
horizon) with `nproc_per_node` = N, the same global batch, one torch thread per rank; rollout env steps/s = the
step's env steps / its rollout seconds. Scaling efficiency = (1-rank time / N-rank time) / N.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _simulate(batch: int, steps: int) -> float:
    from opd_core.bench import simulator

    result = simulator(batch=batch, steps=steps)
    return batch * steps / result["env_steps_per_second"]  # this process's seconds


def simulator_scaling(ranks: int, batch: int, steps: int) -> dict:
    per_rank = batch // ranks
    with ProcessPoolExecutor(ranks, mp_context=get_context("spawn")) as pool:
        seconds = list(pool.map(_simulate, [per_rank] * ranks, [steps] * ranks))
    return {"ranks": ranks, "envs_per_rank": per_rank, "env_steps_per_second": per_rank * ranks * steps / max(seconds)}


def step_scaling(ranks: int, batch_tasks: int, group_size: int, steps: int) -> dict:
    from opd_core.bench import training_step

    started = time.perf_counter()
    result = training_step(batch_tasks=batch_tasks, group_size=group_size, steps=steps, nproc_per_node=ranks)
    result["ranks"] = ranks
    result["rollout_env_steps_per_second"] = result["states_per_step"] / (
        result["step_seconds"] * result["rollout_share"]
    )
    result["wall_seconds_with_start"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts")
    parser.add_argument("--sim-batch", type=int, default=64)
    parser.add_argument("--sim-steps", type=int, default=300)
    parser.add_argument("--batch-tasks", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="measured OPD steps (after one warm-up step)")
    parser.add_argument("--skip-step", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    counts = [int(n) for n in args.ranks.split(",")]
    sim = [simulator_scaling(n, args.sim_batch, args.sim_steps) for n in counts]
    for row in sim:
        row["scaling_efficiency"] = row["env_steps_per_second"] / (sim[0]["env_steps_per_second"] * row["ranks"])
    out = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "sim": sim}
    if not args.skip_step:
        step = [step_scaling(n, args.batch_tasks, args.group_size, args.steps) for n in counts]
        for row in step:
            row["scaling_efficiency"] = step[0]["step_seconds"] / (row["step_seconds"] * row["ranks"])
        out["step"] = step
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
