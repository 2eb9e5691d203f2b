"""Evaluation on the fixed initial states: per-task success of seen and unseen tasks, plus rollout videos.

`evaluate` runs the protocol the environment registered (`EnvSpec.evaluation_protocol`); the generic one,
`evaluate_fixed_init_states`, lives here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from opd_core.eval_result import EvalResult, mean_success
from opd_core.policies.base import Policy
from opd_core.registry import evaluation_protocol, make_env
from opd_core.rollout import collect
from opd_core.video import write_mp4

__all__ = ["EvalResult", "evaluate", "evaluate_fixed_init_states", "mean_success"]


def evaluate(
    policy: Policy,
    env_name: str,
    seen: list[str],
    unseen: list[str],
    *,
    init_states: int,
    temperature: float = 0.0,
    image_size: int = 64,
    max_episode_steps: int = 0,
    video_tasks: list[str] = (),
    video_dir: Path | None = None,
    run_dir: Path | None = None,
    seed: int = 0,
) -> EvalResult:
    """Run every task from its first `init_states` fixed initial states; film init state 0 of `video_tasks`.

    The environment's registered protocol decides how (LIBERO: no-op warm-up, per-suite step limits, a few episodes
    at a time)."""
    protocol = evaluation_protocol(env_name)
    return protocol(
        policy,
        env_name,
        seen,
        unseen,
        init_states=init_states,
        temperature=temperature,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        video_tasks=list(video_tasks),
        video_dir=video_dir,
        run_dir=run_dir,
        seed=seed,
    )


def evaluate_fixed_init_states(
    policy: Policy,
    env_name: str,
    seen: list[str],
    unseen: list[str],
    *,
    init_states: int,
    temperature: float = 0.0,
    image_size: int = 64,
    max_episode_steps: int = 0,
    video_tasks: list[str] = (),
    video_dir: Path | None = None,
    run_dir: Path | None = None,
    seed: int = 0,
) -> EvalResult:
    """The generic protocol: every episode in one vectorized batch, the policy in eval mode (restored after)."""
    tasks = list(dict.fromkeys([*seen, *unseen]))
    episodes = [(task, i) for task in tasks for i in range(init_states)]
    film = {episodes.index((task, 0)) for task in video_tasks if task in tasks}
    env = make_env(env_name, len(episodes), image_size=image_size, max_episode_steps=max_episode_steps)
    was_training = policy.training
    try:
        policy.eval()
        generator = torch.Generator().manual_seed(seed)
        rollout = collect(
            policy,
            env,
            [t for t, _ in episodes],
            [i for _, i in episodes],
            temperature,
            generator,
            film=film,
            keep_states=False,
        )
    finally:
        policy.train(was_training)  # a failed evaluation never leaves a training policy in eval mode
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
