"""LIBERO's standard evaluation protocol for any policy: per-task success on the fixed initial states.

The protocol: each task of a suite runs from its fixed initial states 0..n-1 (LIBERO ships 50 per task; the
standard figure uses all 50), the environment first takes 10 no-op steps, then the policy acts greedily for at most
220 / 280 / 300 / 520 steps (spatial / object / goal / 10); an episode succeeds when LIBERO's success predicate
holds. Images are rotated 180 degrees as the standard scripts do. Videos show the agent view and the wrist camera
side by side.

`evaluate_protocol` gives a suite's standard figure (eval.json, videos); `evaluate_run` runs the same protocol on a
run's seen and unseen tasks, for `opd eval` on a LIBERO checkpoint and the training loop's evaluation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from opd_core.envs.libero.tasks import NUM_FIXED_INIT_STATES, catalog, suite_name
from opd_core.eval_result import EvalResult, mean_success
from opd_core.policies.base import Policy
from opd_core.rollout import collect
from opd_core.video import write_mp4


@dataclass
class ProtocolResult:
    suite: str
    per_task: dict[str, float]
    """Task -> success rate over its initial states."""
    success: float
    """Mean over tasks (the suite's headline number)."""
    episodes: int
    init_states: int
    mean_length: dict[str, float]
    failed_episodes: int
    """Episodes lost to environment failures (marked failed after retries; counted as failures)."""
    seconds: float
    videos: list[dict] = field(default_factory=list)

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        out = {f"{prefix}/seen_success": self.success}
        out.update({f"{prefix}/success/{task}": value for task, value in self.per_task.items()})
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate_protocol(
    policy: Policy,
    suite: str,
    tasks: list[str] | None = None,
    *,
    init_states: int = NUM_FIXED_INIT_STATES,
    temperature: float = 0.0,
    image_size: int = 128,
    max_episode_steps: int = 0,
    num_envs: int = 0,
    num_workers: int = 0,
    cameras: bool = True,
    videos_per_task: int = 1,
    out_dir: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    env=None,
) -> ProtocolResult:
    """Run the standard protocol; write `eval.json` and videos into `out_dir` when given.

    `num_envs` episodes run at once (default: every initial state of one task, at most 10); `env` may pass a
    prepared `LiberoVecEnv` (its size sets the batch). `cameras=False` runs physics only (for policies that read
    the privileged state, such as the scripted expert: much faster, no videos).
    """
    started = time.perf_counter()
    suite = suite_name(suite)
    tasks = list(tasks or catalog().suite_tasks(suite))
    if not 1 <= init_states <= NUM_FIXED_INIT_STATES:
        raise ValueError(f"init_states must be 1..{NUM_FIXED_INIT_STATES} (LIBERO's fixed initial states)")
    episodes = [(task, i) for task in tasks for i in range(init_states)]
    film = {k for k, (_, i) in enumerate(episodes) if i < videos_per_task} if out_dir and cameras else set()
    outcome = run_episodes(
        policy,
        episodes,
        film,
        temperature=temperature,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        num_envs=num_envs or min(init_states, 10),
        num_workers=num_workers,
        cameras=cameras,
        seed=seed,
        progress=progress,
        env=env,
    )
    table = outcome.success.reshape(len(tasks), init_states)
    per_task = {task: float(table[k].mean()) for k, task in enumerate(tasks)}
    lengths = outcome.lengths.reshape(len(tasks), init_states)
    mean_length = {task: float(lengths[k].mean()) for k, task in enumerate(tasks)}
    result = ProtocolResult(
        suite,
        per_task,
        float(table.mean()),
        len(episodes),
        init_states,
        mean_length,
        outcome.failed,
        time.perf_counter() - started,
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        result.videos = outcome.write_videos(episodes, out_dir / "videos", out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result


@dataclass
class EpisodeOutcome:
    success: np.ndarray
    """bool [episodes]"""
    lengths: np.ndarray
    """Policy steps taken (after the no-op warm-up) [episodes]."""
    failed: int
    """Episodes lost to environment failures (counted as failures)."""
    frames: dict[int, list[np.ndarray]]
    """Episode index -> frames (agent view | wrist), for the filmed episodes."""

    def write_videos(self, episodes: list[tuple[str, int]], video_dir: Path, relative_to: Path) -> list[dict]:
        videos = []
        for k in sorted(self.frames):
            task, i = episodes[k]
            path = write_mp4(Path(video_dir) / f"{task}__init{i}.mp4", self.frames[k], scale=2)
            videos.append(
                {
                    "task": task,
                    "init_state": i,
                    "success": bool(self.success[k]),
                    "path": str(path.relative_to(relative_to)),
                    "cameras": "agent view | wrist",
                }
            )
        return videos


@torch.no_grad()
def run_episodes(
    policy: Policy,
    episodes: list[tuple[str, int]],
    film: set[int],
    *,
    temperature: float,
    image_size: int,
    max_episode_steps: int,
    num_envs: int,
    num_workers: int = 0,
    cameras: bool = True,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    env=None,
) -> EpisodeOutcome:
    """(task, init state) episodes under the protocol, `num_envs` at a time in the given (task) order, so that a
    worker holds few simulators at once (about 1-2 GB each). A batch never mixes suites, so each episode gets its
    own suite's step limit; the wrist camera is rendered only when an episode is filmed."""
    from opd_core.envs.libero import make_libero_env

    own_env = env is None
    if own_env:
        env = make_libero_env(
            max(1, min(len(episodes), num_envs)),
            image_size=image_size,
            max_episode_steps=max_episode_steps,
            num_workers=num_workers,
            cameras=cameras,
            wrist=bool(film),
        )
    generator = torch.Generator().manual_seed(seed)
    was_training = policy.training
    policy.eval()
    success = np.zeros(len(episodes), dtype=bool)
    lengths = np.zeros(len(episodes), dtype=np.int64)
    failed = 0
    frames: dict[int, list[np.ndarray]] = {}
    try:
        for start, stop in _batches(episodes, env.num_envs):
            chunk = episodes[start:stop]
            padded = chunk + [chunk[-1]] * (env.num_envs - len(chunk))  # the pool has a fixed size
            filmed = {k - start for k in film if start <= k < stop}
            rollout = collect(
                policy,
                env,
                [t for t, _ in padded],
                [i for _, i in padded],
                temperature,
                generator,
                film=filmed,
                keep_states=False,
                active=len(chunk),
            )
            success[start:stop] = rollout.success[: len(chunk)]
            lengths[start:stop] = rollout.lengths[: len(chunk)]
            failed += int(env.failed[: len(chunk)].sum())
            frames.update({start + k: v for k, v in rollout.frames.items()})
            if progress is not None:
                progress(len(chunk))
    finally:
        policy.train(was_training)
        if own_env:
            env.close()
    return EpisodeOutcome(success, lengths, failed, frames)


def _batches(episodes: list[tuple[str, int]], size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `size` consecutive episodes, cut wherever the suite changes."""
    suite_of = catalog().suite_of
    ranges, start = [], 0
    for k in range(1, len(episodes) + 1):
        if k == len(episodes) or k - start == size or suite_of(episodes[k][0]) != suite_of(episodes[start][0]):
            ranges.append((start, k))
            start = k
    return ranges


def evaluate_run(
    policy: Policy,
    seen: list[str],
    unseen: list[str],
    *,
    init_states: int,
    temperature: float,
    image_size: int,
    max_episode_steps: int,
    video_tasks: list[str],
    video_dir: Path | None,
    run_dir: Path | None,
    seed: int = 0,
    num_envs: int = 0,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """The protocol on a run's seen and unseen tasks: init states 0..init_states-1, filming init state 0 of
    `video_tasks`. The training loop's evaluation and `opd eval`."""
    tasks = list(dict.fromkeys([*seen, *unseen]))
    episodes = [(task, i) for task in tasks for i in range(init_states)]
    film = {episodes.index((task, 0)) for task in video_tasks if task in tasks} if video_dir is not None else set()
    outcome = run_episodes(
        policy,
        episodes,
        film,
        temperature=temperature,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        num_envs=num_envs or min(init_states, 10),
        num_workers=num_workers,
        seed=seed,
        progress=progress,
    )
    table = outcome.success.reshape(len(tasks), init_states)
    per_task = {task: float(table[k].mean()) for k, task in enumerate(tasks)}
    lengths = outcome.lengths.reshape(len(tasks), init_states)
    videos = outcome.write_videos(episodes, video_dir, run_dir or video_dir) if film else []
    details = {
        "failed_episodes": outcome.failed,
        "mean_length": {task: float(lengths[k].mean()) for k, task in enumerate(tasks)},
    }
    return EvalResult(
        per_task, mean_success(per_task, seen), mean_success(per_task, unseen) if unseen else None, videos, details
    )


def evaluate_env_run(policy: Policy, env_name: str, seen: list[str], unseen: list[str], **options) -> EvalResult:
    """`evaluate_run` as the registered evaluation protocol `libero` (`opd_core.registry.EVAL_PROTOCOLS`)."""
    return evaluate_run(policy, seen, unseen, **options)
