"""OPD steps with a transformers VLA built offline (random weights) on this machine's CPU.

Prints JSON: parameters, seconds per step and its rollout / labeling / update split, tokens/s of the update phase
(prompt + image + action tokens per state), rollout action tokens/s with and without the KV cache (the uncached
loop is the decoder this project had before the cache), and the process's peak resident memory (student and
teacher both loaded, as in a run).

  python bench/bench_transformers.py                                  # tiny LLaVA, B=2 x G=2, 10-step episodes
  python bench/bench_transformers.py --arch openvla_like --batch-tasks 1 --group-size 2 --episode-steps 2 --steps 1
  python bench/bench_transformers.py --arch paligemma --batch-tasks 1 --group-size 2 --episode-steps 2 --steps 1

--arch: tiny (248k parameters), openvla_like (SigLIP + MLP projector + Llama, ~310M), paligemma (SigLIP + linear +
Gemma, ~270M); the realistic ones train LoRA adapters (--lora-rank). A GPU run needs a lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the offline model builders

from hf_models import build_openvla_like, build_paligemma, build_tiny_llava  # noqa: E402
from opd_core import bench
from opd_core.checkpoint import load_policy
from opd_core.config import RunConfig
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG

BUILDERS = {"tiny": build_tiny_llava, "openvla_like": build_openvla_like, "paligemma": build_paligemma}


def _obs(n: int):
    tasks = CATALOG.suite_tasks("object")
    return TabletopVecEnv(n).reset([tasks[i % len(tasks)] for i in range(n)], list(range(n)))


def rollout_speed(model_dir: Path, queries: int, repeats: int) -> dict:
    """Action tokens/s of TransformersVLA.sample over `queries` states at once, with and without the cache."""
    policy = load_policy(model_dir)
    obs = _obs(queries)
    figures = {"tokens_per_state": int(policy._inputs(_obs(1))["input_ids"].shape[1]) + 7}
    for cache in ("off", "on"):
        policy.settings.kv_cache = cache
        policy.sample(obs, 1.0, torch.Generator().manual_seed(0))  # warm-up
        start = time.perf_counter()
        for seed in range(repeats):
            policy.sample(obs, 1.0, torch.Generator().manual_seed(seed))
        figures[f"rollout_tokens_per_second_cache_{cache}"] = repeats * queries * 7 / (time.perf_counter() - start)
    figures["rollout_cache_speedup"] = (
        figures["rollout_tokens_per_second_cache_on"] / figures["rollout_tokens_per_second_cache_off"]
    )
    return figures


def cache_agreement(model_dir: Path) -> dict:
    """Cached vs uncached sampling on 2 queries whose prompts differ in length, same generator (a one-off check
    at full size; tests/test_hf_decoding.py checks reduced sizes in CI)."""
    policy = load_policy(model_dir)
    obs = TabletopVecEnv(2).reset([CATALOG.suite_tasks("object")[0], CATALOG.suite_tasks("goal")[0]], [0, 1])
    runs = {}
    for cache in ("on", "off"):
        policy.settings.kv_cache = cache
        runs[cache] = policy.sample(obs, 1.0, torch.Generator().manual_seed(0))
    (bins, logp, logits), (ref_bins, ref_logp, ref_logits) = runs["on"], runs["off"]
    return {
        "bins_equal": bool(torch.equal(bins, ref_bins)),
        "max_logp_diff": float((logp - ref_logp).abs().max()),
        "max_logit_diff": float((logits - ref_logits).abs().max()),
    }


def prepare(arch: str, model_dir: Path, size: dict, kv_cache: str, queries: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    BUILDERS[arch](model_dir, **size)
    build_seconds = time.perf_counter() - start
    conventions = json.loads((model_dir / "opd_vla.json").read_text())
    (model_dir / "opd_vla.json").write_text(json.dumps({**conventions, "kv_cache": kv_cache}))
    params = sum(p.numel() for p in load_policy(model_dir).parameters())
    return {
        "parameters": params,
        "build_seconds": build_seconds,
        **cache_agreement(model_dir),
        **rollout_speed(model_dir, queries, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", choices=sorted(BUILDERS), default="tiny")
    parser.add_argument("--hidden", type=int, default=0, help="decoder width (0: the builder's default)")
    parser.add_argument("--layers", type=int, default=0, help="decoder depth (0: the builder's default)")
    parser.add_argument("--batch-tasks", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=2)
    parser.add_argument("--episode-steps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2, help="measured steps (one more runs first, unmeasured)")
    parser.add_argument("--lora-rank", type=int, default=-1, help="-1: 0 for tiny, 8 for the realistic layouts")
    parser.add_argument("--kv-cache", choices=("on", "off"), default="on", help="decoder used in the OPD steps")
    parser.add_argument("--rollout-repeats", type=int, default=3)
    args = parser.parse_args()
    size = {k: v for k, v in (("hidden", args.hidden), ("layers", args.layers)) if v}
    if args.arch == "tiny":
        size = {"hidden": 64, "layers": 2, **size}
    lora = args.lora_rank if args.lora_rank >= 0 else (0 if args.arch == "tiny" else 8)
    queries = args.batch_tasks * args.group_size
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "vla"
        # built and timed in a child process, so that the peak memory below is the training run's alone
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            speed = pool.apply(prepare, (args.arch, model_dir, size, args.kv_cache, queries, args.rollout_repeats))
        figures = bench.training_step(
            args.batch_tasks,
            args.steps,
            args.group_size,
            student=str(model_dir),
            teacher=str(model_dir),
            max_episode_steps=args.episode_steps,
            hf_lora_rank=lora,
        )
    update_seconds = figures["update_share"] * figures["step_seconds"]
    passes = RunConfig().updates_per_step  # each state is trained on this many times per step
    figures.update(
        {
            "bench": "transformers_step",
            "arch": args.arch,
            "lora_rank": lora,
            "kv_cache_in_steps": args.kv_cache,
            **speed,
            "update_tokens_per_second": passes
            * figures["states_per_step"]
            * speed["tokens_per_state"]
            / update_seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "load_average": os.getloadavg()[0],
        }
    )
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
