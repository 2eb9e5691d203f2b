"""One OPD training step with a transformers VLA (the tiny offline LLaVA) on this machine's CPU.

Prints JSON: seconds per step, its rollout / labeling / update split, and tokens/s of the update phase (prompt +
image + action tokens per state). Usage: python bench/bench_transformers.py [--hidden 64 --layers 2]
A GPU run of a >=100M-parameter model needs a lent GPU machine; none was lent when this was written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the offline model builders

from opd_core import bench
from opd_core.checkpoint import load_policy
from opd_core.config import RunConfig
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG

from hf_models import build_tiny_llava  # noqa: E402


def tokens_per_state(model_dir: Path) -> int:
    policy = load_policy(model_dir)
    obs = TabletopVecEnv(1).reset(CATALOG.suite_tasks("object")[:1], [0])
    return int(policy._inputs(obs)["input_ids"].shape[1]) + 7


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-tasks", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=2)
    parser.add_argument("--episode-steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_llava(Path(tmp) / "vla", hidden=args.hidden, layers=args.layers)
        params = sum(p.numel() for p in load_policy(model_dir).parameters())
        figures = bench.training_step(args.batch_tasks, 2, args.group_size, student=str(model_dir),
                                      teacher=str(model_dir), max_episode_steps=args.episode_steps)
        tokens = tokens_per_state(model_dir)
    update_seconds = figures["update_share"] * figures["step_seconds"]
    passes = RunConfig().updates_per_step  # each state is trained on this many times per step
    figures.update({"bench": "transformers_step", "parameters": params, "tokens_per_state": tokens,
                    "update_tokens_per_second": passes * figures["states_per_step"] * tokens / update_seconds})
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
