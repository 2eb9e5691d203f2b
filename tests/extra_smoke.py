"""The simulator extras' smoke run (LIBERO, ALOHA): a fresh tiny student, the extra's privileged expert as the
teacher, two OPD steps of 3-step episodes at B=1 x G=2, and an evaluation of one initial state with one video at
the end. Each extra's test asserts what it needs of the outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from opd_core.checkpoint import save_checkpoint
from opd_core.config import RunConfig
from opd_core.policies import build_policy
from opd_core.sinks import LocalDirSink, read_metrics
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import TrainResult, train


def two_opd_steps(
    tmp_path: Path,
    *,
    env: str,
    suite: str,
    task: str,
    save_expert: Callable[[Path], None],
    image_size: int,
    action_dim: int = 7,
    policy_size: dict | None = None,
) -> tuple[TrainResult, list[dict], list[dict]]:
    """Train the smoke run in `tmp_path / "run"`; returns its result, its metric rows and its videos.jsonl rows."""
    torch.manual_seed(0)
    tiny = {"width": 4, "hidden": 32, "input_size": 16, **(policy_size or {})}
    student = build_policy("small_vla", tiny, ActionTokenizer.identity(action_dim))
    save_checkpoint(tmp_path / "student", student, step=0)
    save_expert(tmp_path / "teacher")  # labels from the privileged state the rollout keeps per state
    config = RunConfig.from_dict(
        dict(
            name=f"{env}-smoke",
            env=env,
            suite=suite,
            tasks=[task],
            pipeline="opd",
            objective="reverse_kl",
            student_checkpoint=str(tmp_path / "student"),
            teacher_checkpoint=str(tmp_path / "teacher"),
            steps=2,
            batch_tasks=1,
            group_size=2,
            max_episode_steps=3,
            image_size=image_size,
            eval_every=2,
            eval_init_states=1,
            videos_per_eval=1,
            save_every=0,
            minibatch_size=64,
            updates_per_step=1,
            out_dir=str(tmp_path / "run"),
        )
    ).validate()
    sink = LocalDirSink(config.out_dir)
    try:
        result = train(config, sink)
    finally:
        sink.close()
    rows = read_metrics(tmp_path / "run")
    videos = [json.loads(line) for line in (tmp_path / "run/videos.jsonl").read_text().splitlines()]
    return result, rows, videos
