"""Evaluation on the fixed initial states: per-task success of seen and unseen tasks, plus rollout videos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from opd_core.envs.base import make_env
from opd_core.policies.base import Policy
from opd_core.rollout import collect
from opd_core.video import write_mp4


@dataclass
class EvalResult:
    per_task: dict[str, float]
    seen_success: float
    unseen_success: float | None
    videos: list[dict] = field(default_factory=list)
    """One dict per written video: task, success, path (relative to the run folder)."""
    details: dict = field(default_factory=dict)
    """Simulator-specific facts (LIBERO: episodes lost to environment failures, mean episode length per task)."""

    def metrics(self) -> dict[str, float]:
        out = {"eval/seen_success": self.seen_success}
        if self.unseen_success is not None:
            out["eval/unseen_success"] = self.unseen_success
        out.update({f"eval/success/{task}": value for task, value in self.per_task.items()})
        return out

    def summary(self) -> dict:
        return {"seen_success": self.seen_success, "unseen_success": self.unseen_success, "per_task": self.per_task,
                **self.details}


def evaluate(policy: Policy, env_name: str, seen: list[str], unseen: list[str], *, init_states: int,
             temperature: float = 0.0, image_size: int = 64, max_episode_steps: int = 0,
             video_tasks: list[str] = (), video_dir: Path | None = None, run_dir: Path | None = None,
             seed: int = 0) -> EvalResult:
    """Run every task from its first `init_states` fixed initial states; film init state 0 of `video_tasks`.

    LIBERO runs under its standard protocol (no-op warm-up, per-suite step limits, a few episodes at a time)."""
    if env_name == "libero":
        from opd_core.envs.libero.protocol import evaluate_run

        return evaluate_run(policy, seen, unseen, init_states=init_states, temperature=temperature,
                            image_size=image_size, max_episode_steps=max_episode_steps, video_tasks=list(video_tasks),
                            video_dir=video_dir, run_dir=run_dir, seed=seed)
    tasks = list(dict.fromkeys([*seen, *unseen]))
    episodes = [(task, i) for task in tasks for i in range(init_states)]
    film = {episodes.index((task, 0)) for task in video_tasks if task in tasks}
    env = make_env(env_name, len(episodes), image_size=image_size, max_episode_steps=max_episode_steps)
    try:
        was_training = policy.training
        policy.eval()
        generator = torch.Generator().manual_seed(seed)
        rollout = collect(policy, env, [t for t, _ in episodes], [i for _, i in episodes], temperature,
                          generator, film=film, keep_states=False)
        policy.train(was_training)
    finally:
        env.close()
    success = rollout.success.reshape(len(tasks), init_states)
    per_task = {task: float(success[k].mean()) for k, task in enumerate(tasks)}
    videos = []
    if video_dir is not None:
        for index in sorted(film):
            task = episodes[index][0]
            path = write_mp4(video_dir / f"{task.replace('/', '__')}.mp4", rollout.frames[index])
            relative = path.relative_to(run_dir) if run_dir else path
            videos.append({"task": task, "success": bool(rollout.success[index]), "path": str(relative)})
    unseen_success = mean_success(per_task, unseen) if unseen else None
    return EvalResult(per_task, mean_success(per_task, seen), unseen_success, videos)


def mean_success(per_task: dict[str, float], tasks: list[str]) -> float:
    return float(np.mean([per_task[t] for t in tasks])) if tasks else float("nan")
