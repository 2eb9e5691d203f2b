"""The action-distribution inspector behind `worker.api.inspect_actions`: a run's checkpoint, a filmed evaluation
episode replayed (opd_core.action_inspector), a teacher's labels, and the video's frame at the chosen index.

Replays, teacher labels, loaded policies and decoded videos are cached per process (a few of each, least recently
used first out), so that moving the frame slider only indexes arrays.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opd_core.config import RunConfig

CACHE_SIZE = 6


@dataclass(frozen=True)
class TeacherChoice:
    label: str
    path: str
    """An OPD checkpoint folder: relative to the data directory, or absolute (shipped checkpoints)."""
    source: str
    """run (the run's own teacher) | shipped (assets/) | checkpoint (another finished run's final checkpoint)."""


@dataclass(frozen=True)
class ActionInspection:
    run_id: int
    step: int
    task: str
    frame: int
    env: str
    num_frames: int
    """Frames with an action (0..num_frames-1); the video has one more, the outcome."""
    teacher: TeacherChoice
    distributions: Any
    """opd_core.action_inspector.ActionDistributions at `frame`."""
    image: np.ndarray
    """The video's frame at `frame` (uint8 [H, W, 3]); the replay's own render when the video is missing."""
    filmed_success: bool
    filmed_frames: int | None
    """Frames in the video file (None when the file is missing)."""
    replay_success: bool
    replay_length: int
    replay: str
    """solo | evaluation (the whole evaluation batch re-simulated), see opd_core.action_inspector."""
    temperature: float
    replay_seconds: float
    """Time the replay took when it was made (0 for a cached replay's later frames)."""

    @property
    def reproduced(self) -> bool:
        """The replay took as many steps as the filmed episode and ended the same way."""
        return self.filmed_frames == self.replay_length + 1 and self.filmed_success == self.replay_success


class _Cache:
    """A small thread-safe LRU map (Streamlit serves sessions from threads)."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, make: Callable[[], Any]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: a replay takes up to seconds (LIBERO: minutes)
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_policies = _Cache()
_replays = _Cache()
_labels = _Cache(size=512)  # one entry per (episode, teacher, query): [chunk * 7, 256] floats each
_videos = _Cache()


def clear_caches() -> None:
    for cache in (_policies, _replays, _labels, _videos):
        cache.clear()


# ============================================================================================ teachers
def shipped_teachers(env: str) -> list[TeacherChoice]:
    """The shipped teacher checkpoints for `env` (assets/<env>/<suite>/teacher), one per suite."""
    from opd_core.resources import ASSETS_DIR  # the shipped checkpoints, also from an installed package

    root = (ASSETS_DIR / env).resolve()
    if not root.is_dir():
        return []
    return [
        TeacherChoice(f"shipped {env} {folder.parent.name} teacher", str(folder), "shipped")
        for folder in sorted(root.glob("*/teacher"))
        if (folder / "meta.json").is_file()
    ]


def teacher_choices(run: Any, finished: list[Any], final_checkpoint: Callable[[int], Any]) -> list[TeacherChoice]:
    """The teachers a run can be inspected against: its own (if it has one), the shipped ones for its env, and
    the final checkpoint of every other finished run on the same env."""
    config = run.config or {}
    env = config.get("env", "tabletop")
    choices = []
    if config.get("teacher_checkpoint"):
        path = config["teacher_checkpoint"]
        choices.append(TeacherChoice(f"this run's teacher ({'/'.join(Path(path).parts[-3:])})", path, "run"))
    choices += shipped_teachers(env)
    for other in finished:
        if other.id == run.id or (other.config or {}).get("env", "tabletop") != env:
            continue
        checkpoint = final_checkpoint(other.id)
        if checkpoint is not None:
            choices.append(
                TeacherChoice(f"#{other.id} {other.name} · step {checkpoint.step}", checkpoint.path, "checkpoint")
            )
    unique: dict[str, TeacherChoice] = {}
    for choice in choices:
        unique.setdefault(choice.path, choice)
    return list(unique.values())


def default_teacher(run: Any, choices: list[TeacherChoice]) -> TeacherChoice | None:
    """The run's own teacher; else the shipped teacher of its suite; else the first choice."""
    suite = (run.config or {}).get("suite") or RunConfig.suite  # a stored config may omit a default field
    for wanted in ("run", f"shipped:{suite}", "shipped"):
        for choice in choices:
            if choice.source == wanted or (
                wanted.startswith("shipped:") and choice.source == "shipped" and Path(choice.path).parent.name == suite
            ):
                return choice
    return choices[0] if choices else None


# ============================================================================================ inspection
def inspect_rollout(
    run: Any,
    checkpoint_path: Path,
    video: Any,
    video_path: Path,
    frame: int,
    teacher: TeacherChoice,
    teacher_path: Path,
) -> ActionInspection:
    """The inspection of `frame` of the episode filmed in `video` (a VideoInfo) at the checkpoint's step."""
    from opd_core import action_inspector as inspector

    config = RunConfig.from_dict(run.config)
    student = _policies.get(("policy", str(checkpoint_path)), lambda: _load(checkpoint_path, config))
    teacher_policy = _policies.get(("policy", str(teacher_path)), lambda: _load(teacher_path, config))
    inspector.check_pair(student, teacher_policy)
    filmed = _videos.get(("video", str(video_path)), lambda: _decode(video_path))
    replay_key = ("replay", run.id, str(checkpoint_path), video.task)
    started = time.perf_counter()
    episode = _replays.get(replay_key, lambda: _replay(student, config, video.task, filmed, video.success))
    seconds = time.perf_counter() - started
    query, _ = episode.query_of(frame)
    labels = _labels.get(
        ("labels", replay_key, str(teacher_path), query),
        lambda: inspector.teacher_logits_at(episode, teacher_policy, query),
    )
    distributions = inspector.frame_distributions(episode, labels, frame, inspector.bin_values(student))
    image = filmed[frame] if filmed is not None and frame < len(filmed) else episode.frames[frame]
    return ActionInspection(
        run.id,
        video.step,
        video.task,
        frame,
        config.env,
        episode.length,
        teacher,
        distributions,
        image,
        bool(video.success),
        None if filmed is None else len(filmed),
        episode.success,
        episode.length,
        episode.batch,
        episode.temperature,
        seconds if seconds > 0.05 else 0.0,
    )


def _replay(student, config: RunConfig, task: str, filmed: list[np.ndarray] | None, filmed_success: bool):
    """Alone when that reproduces the video (greedy evaluations), else inside the whole evaluation batch.

    LIBERO replays alone always: its evaluation runs a few episodes at a time through worker processes, and a
    replay of the batches before would cost as much as the evaluation itself."""
    from opd_core import action_inspector as inspector
    from opd_core.registry import task_catalog

    seen = list(config.tasks) or task_catalog(config.env).suite_tasks(config.suite)  # as the training loop does
    unseen = list(config.unseen_tasks)
    replay = lambda batch: inspector.replay_evaluation_episode(  # noqa: E731
        student,
        config.env,
        seen,
        unseen,
        task,
        init_states=config.eval_init_states,
        temperature=config.eval_temperature,
        seed=config.seed,
        image_size=config.image_size,
        max_episode_steps=config.max_episode_steps,
        batch=batch,
    )
    if config.env == "libero":
        return replay(inspector.BATCH_SOLO)
    episode = replay(None)
    if (
        episode.batch == inspector.BATCH_SOLO
        and filmed is not None
        and (len(filmed) != episode.length + 1 or episode.success != filmed_success)
    ):
        episode = replay(inspector.BATCH_EVALUATION)
    return episode


def _load(path: Path, config: RunConfig):
    from opd_core.checkpoint import load_policy

    policy = load_policy(path, "cpu", hf_settings=config.hf_settings())  # the dashboard's process: CPU only
    policy.eval()
    return policy


def _decode(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]
