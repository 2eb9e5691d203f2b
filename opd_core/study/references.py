"""Reference rows: the base, the teacher and the student before post-training, measured exactly as the runs are.

Greedy success on the same fixed initial states as every run's evaluation (seen, held-out unseen, pre-training
tasks), plus one sampled rollout (temperature 1, as training rollouts are) on the seen tasks for the sampled
success and the policy's entropy on its own states (the teacher's is the entropy plot's reference line).
Cached in DIR/assets/<suite>/reference.json, keyed by what was measured (checkpoints by their content, so that a
study folder cloned elsewhere keeps its cache and a checkpoint re-trained in place is measured again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from opd_core import objectives
from opd_core.checkpoint import META, load_policy
from opd_core.evaluate import evaluate
from opd_core.registry import make_env
from opd_core.rollout import collect
from opd_core.study.plan import TaskGroups

ROLES = {"base": "base", "teacher": "teacher", "student_init": "student"}
"""Reference row -> asset role."""


def measure(
    checkpoint: Path,
    groups: TaskGroups,
    *,
    init_states: int,
    image_size: int,
    max_episode_steps: int,
    seed: int = 0,
    env_name: str = "tabletop",
) -> dict:
    policy = load_policy(checkpoint)
    result = evaluate(
        policy,
        env_name,
        groups.seen,
        groups.unseen,
        init_states=init_states,
        temperature=0.0,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        seed=seed,
    )
    tasks = [task for task in groups.seen for _ in range(init_states)]
    init_ids = [i for _ in groups.seen for i in range(init_states)]
    env = make_env(env_name, len(tasks), image_size=image_size, max_episode_steps=max_episode_steps)
    try:
        policy.eval()
        rollout = collect(policy, env, tasks, init_ids, 1.0, torch.Generator().manual_seed(seed))
    finally:
        env.close()
    per_task = result.per_task
    return {
        "checkpoint": str(checkpoint),
        "per_task": per_task,
        "seen_success": _mean(per_task, groups.seen),
        "unseen_success": _mean(per_task, groups.held_out),
        "pretrain_success": _mean(per_task, groups.retention),
        "sampled_success": float(rollout.success.mean()),
        "entropy": float(objectives.entropy(rollout.student_logits).mean()),
    }


def references(
    cache: Path,
    checkpoints: dict[str, Path],
    groups: TaskGroups,
    *,
    init_states: int,
    image_size: int,
    max_episode_steps: int,
    env_name: str = "tabletop",
) -> dict[str, dict]:
    """{base, teacher, student_init} -> measurement; reused from `cache` when the same things were measured."""
    key = {
        **({"env": env_name} if env_name != "tabletop" else {}),  # tabletop caches made before envs stay valid
        "checkpoints": {k: fingerprint(v) for k, v in checkpoints.items()},
        "groups": groups.to_dict(),
        "init_states": init_states,
        "image_size": image_size,
        "max_episode_steps": max_episode_steps,
    }
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["references"]
    found = {
        row: measure(
            checkpoints[row],
            groups,
            init_states=init_states,
            image_size=image_size,
            max_episode_steps=max_episode_steps,
            env_name=env_name,
        )
        for row in ROLES
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "references": found}, indent=1))
    return found


def fingerprint(checkpoint: Path) -> str:
    """A checkpoint's identity wherever its folder lies: its files' names and sizes and its meta.json's text."""
    checkpoint = Path(checkpoint)
    digest = hashlib.sha256()
    for file in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(checkpoint)}:{file.stat().st_size}\n".encode())
        if file.name == META:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _mean(per_task: dict[str, float], tasks: list[str]) -> float | None:
    return float(np.mean([per_task[t] for t in tasks])) if tasks else None
