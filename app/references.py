"""Reference numbers: the teacher's success and the student's starting point.

A teacher checkpoint that was trained in the lab has an evaluation summary in the store (its run's checkpoint
row). Any other teacher (the shipped one, a checkpoint trained elsewhere with `opd train`) carries the evaluation
that training recorded with it (meta.json `extra.eval`: seen/unseen success and per-task results, which train()
writes into every checkpoint); nothing is re-evaluated in the dashboard. A checkpoint without a recorded
evaluation (e.g. a transformers model folder) has no reference. The reference for a distillation run is its
teacher's success on the run's own seen tasks (the mean of the teacher's per-task results), so that the dashed
line on a chart measures the same thing as the curves.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class CheckpointLike(Protocol):
    step: int
    path: str
    summary: dict[str, Any]


class RunLike(Protocol):
    id: int
    config: dict[str, Any]


def normalize_path(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path)) if path else ""


def resolve_checkpoint(path: str, artifact_path: Callable[[str], Any]) -> str:
    """A config's checkpoint path as the worker reads it: absolute, or relative to the data directory."""
    if not path:
        return ""
    if os.path.isabs(os.path.expanduser(path)):
        return normalize_path(path)
    try:
        return normalize_path(str(artifact_path(path)))
    except ValueError:  # outside the data directory: the worker would refuse it too
        return ""


def teacher_summaries(api: Any, runs: Sequence[Any], all_runs: Sequence[Any]) -> dict[str, tuple[int, dict]]:
    """Teacher checkpoint (absolute) -> (the run that wrote it, its evaluation summary), for the teachers of
    `runs` that the lab trained itself. Only the runs owning those checkpoints are asked for their checkpoints
    (a run owns the checkpoints under its folder)."""
    folders = {normalize_path(str(api.artifact_path(run.out_dir))): run for run in all_runs if run.out_dir}
    found: dict[str, tuple[int, dict]] = {}
    asked: set[int] = set()
    for run in runs:
        teacher = resolve_checkpoint(run.config.get("teacher_checkpoint", ""), api.artifact_path)
        owner = next((o for folder, o in folders.items() if teacher.startswith(folder + os.sep)), None)
        if owner is None or owner.id in asked:
            continue
        asked.add(owner.id)
        for path, summary in checkpoint_summaries(
            [owner], {owner.id: api.checkpoints(owner.id)}, api.artifact_path
        ).items():
            found[path] = (owner.id, summary)
    return found


def reference_summaries(api: Any, runs: Sequence[Any], all_runs: Sequence[Any]) -> dict[str, tuple[str, dict]]:
    """Teacher checkpoint (absolute) -> (reference label, evaluation summary) for every teacher of `runs` that
    has an evaluation: the lab's own from the store ("teacher #12"), any other from what its checkpoint
    recorded ("teacher (teacher-object)")."""
    found = {
        path: (f"teacher #{owner}", summary)
        for path, (owner, summary) in teacher_summaries(api, runs, all_runs).items()
    }
    for run in runs:
        teacher = resolve_checkpoint(run.config.get("teacher_checkpoint", ""), api.artifact_path)
        if not teacher or teacher in found:
            continue
        recorded = recorded_evaluation(teacher)
        if recorded is not None:
            found[teacher] = recorded
    return found


def recorded_evaluation(checkpoint: str) -> tuple[str, dict] | None:
    """(label, evaluation) recorded in a checkpoint folder's meta.json, or None (no such file, no evaluation)."""
    meta = Path(checkpoint) / "meta.json"
    try:
        stamp = meta.stat().st_mtime_ns
    except OSError:
        return None
    return _read_recorded(str(meta), stamp)


@functools.lru_cache(maxsize=64)
def _read_recorded(meta_path: str, stamp: int) -> tuple[str, dict] | None:
    """Cached per file version (`stamp`): a meta.json is read once, not on every chart refresh."""
    try:
        meta = json.loads(Path(meta_path).read_text())
    except (OSError, ValueError):
        return None
    evaluation = (meta.get("extra") or {}).get("eval") if isinstance(meta, dict) else None
    if not isinstance(evaluation, dict) or not (evaluation.get("per_task") or _finite(evaluation.get("seen_success"))):
        return None
    name = (meta.get("run_config") or {}).get("name") or Path(meta_path).parent.name
    return f"teacher ({name})", evaluation


def teacher_references(api: Any, runs: Sequence[Any], all_runs: Sequence[Any]) -> list[tuple[str, float]]:
    """(label, success) per distinct teacher success of the runs' teachers, each measured on its run's seen
    tasks: what Compare draws as dashed reference lines."""
    summaries = reference_summaries(api, runs, all_runs)
    lines: dict[tuple[str, float], tuple[str, float]] = {}
    for run in runs:
        teacher = resolve_checkpoint(run.config.get("teacher_checkpoint", ""), api.artifact_path)
        if teacher not in summaries:
            continue
        label, summary = summaries[teacher]
        value = seen_tasks_success(summary, run.config)
        if value is not None:
            lines.setdefault((teacher, round(value, 6)), (label, value))
    return list(lines.values())


def checkpoint_summaries(
    runs: Sequence[Any], checkpoints_by_run: Mapping[int, Sequence[CheckpointLike]], artifact_path: Callable[[str], Any]
) -> dict[str, dict[str, Any]]:
    """Absolute checkpoint folder -> its evaluation summary, for every checkpoint of the given runs.

    The store keeps checkpoint paths relative to the data directory; `artifact_path` makes them absolute."""
    index = {}
    for run in runs:
        for checkpoint in checkpoints_by_run.get(run.id, ()):
            index[normalize_path(str(artifact_path(checkpoint.path)))] = checkpoint.summary or {}
    return index


def seen_tasks_success(summary: Mapping[str, Any], config: Mapping[str, Any]) -> float | None:
    """The summary's mean success on the config's seen tasks (its `tasks`, or every task of its suite), falling
    back to the summary's own seen_success when it did not evaluate those tasks."""
    per_task = summary.get("per_task") or {}
    tasks = list(config.get("tasks") or [])
    if not tasks:
        prefix = f"{config.get('suite', '')}/"
        tasks = [task for task in per_task if task.startswith(prefix)]
    values = [per_task.get(task) for task in tasks]
    if tasks and all(_finite(v) for v in values):
        return float(sum(values) / len(values))
    seen = summary.get("seen_success")
    return float(seen) if _finite(seen) else None


def teacher_success(
    config: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]], artifact_path: Callable[[str], Any] = str
) -> float | None:
    """The run's teacher's success on the run's seen tasks, when the teacher's checkpoint is in `summaries`."""
    teacher = resolve_checkpoint(config.get("teacher_checkpoint", ""), artifact_path)
    if not teacher or teacher not in summaries:
        return None
    return seen_tasks_success(summaries[teacher], config)


def initial_success(checkpoints: Sequence[CheckpointLike]) -> float | None:
    """The student's seen-task success before training (the step-0 evaluation), if the run made one."""
    first = next((c for c in checkpoints if c.step == 0), None)
    value = None if first is None else (first.summary or {}).get("seen_success")
    return float(value) if _finite(value) else None


def final_success(checkpoints: Sequence[CheckpointLike]) -> float | None:
    """Seen-task success of the run's last evaluated checkpoint."""
    for checkpoint in sorted(checkpoints, key=lambda c: c.step, reverse=True):
        value = (checkpoint.summary or {}).get("seen_success")
        if _finite(value):
            return float(value)
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
