"""Read-only queries for the app: plain dataclasses out, never ORM objects.

A run that says 'running' but whose heartbeat is older than the stale threshold is reported as 'crashed' (its
worker died without a word); queries never write, the reaper (lifecycle.reap_stale) makes it permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import not_, or_, select

from worker.lifecycle import is_stale_running, lost_worker_reason
from worker.metric_rows import MetricSeries, read_keys, read_latest, read_series
from worker.models import Checkpoint, Run, Sweep, Video
from worker.models import RunEvent as RunEventRow
from worker.store import Store, utcnow


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    status: str
    """queued | running | finished | failed | cancelled | crashed (a stale 'running' reads as crashed)."""
    queue: str
    attempt: int
    progress: float
    step: int
    total_steps: int
    config: dict[str, Any]
    out_dir: str
    """The run folder, relative to the data directory (api.artifact_path makes it absolute)."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_host: str | None
    error: str | None
    traceback: str | None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    parent_run_id: int | None = None
    sweep_id: int | None = None
    cancel_requested: bool = False
    resumed_from_step: int | None = None
    """The checkpoint step the current attempt resumed from; None when it started from scratch."""


@dataclass(frozen=True)
class RunEvent:
    """One entry of a run's status history (api.run_events)."""

    at: datetime
    kind: str
    """queued | running | finished | failed | cancelled | crashed | cancel | requeued | resume | resumed"""
    message: str


@dataclass(frozen=True)
class CheckpointInfo:
    run_id: int
    step: int
    path: str
    summary: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class VideoInfo:
    run_id: int
    step: int
    task: str
    success: bool
    path: str
    created_at: datetime


@dataclass(frozen=True)
class SweepInfo:
    id: int
    name: str
    grid: dict[str, list]
    created_at: datetime
    run_ids: list[int]
    status_counts: dict[str, int]


def list_runs(
    store: Store, status: str | None = None, sweep_id: int | None = None, tag: str | None = None
) -> list[RunInfo]:
    """Newest first."""
    stale = is_stale_running(store.settings.stale_after_seconds)
    query = select(Run).order_by(Run.id.desc())
    if status == "crashed":
        query = query.where(or_(Run.status == "crashed", stale))
    elif status == "running":
        query = query.where(Run.status == "running", not_(stale))
    elif status is not None:
        query = query.where(Run.status == status)
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    with store.session() as session:
        runs = [_run_info(run, store.settings.stale_after_seconds) for run in session.scalars(query)]
    # Tags are a short JSON list per run: filtering here avoids dialect-specific JSON operators.
    return [run for run in runs if tag is None or tag in run.tags]


def get_run(store: Store, run_id: int) -> RunInfo | None:
    with store.session() as session:
        run = session.get(Run, run_id)
        return None if run is None else _run_info(run, store.settings.stale_after_seconds)


def run_events(store: Store, run_id: int) -> list[RunEvent]:
    """Oldest first."""
    with store.session() as session:
        rows = session.scalars(select(RunEventRow).where(RunEventRow.run_id == run_id).order_by(RunEventRow.id))
        return [RunEvent(_aware(row.at), row.kind, row.message) for row in rows]


def _run_info(run: Run, stale_after_seconds: float) -> RunInfo:
    status = effective_status(run.status, run.heartbeat_at, stale_after_seconds)
    error = run.error
    if status == "crashed" and not error:  # a crash is never shown without its reason
        error = lost_worker_reason(stale_after_seconds)
    return RunInfo(
        id=run.id,
        name=run.name,
        status=status,
        queue=run.queue,
        attempt=run.attempt,
        progress=run.progress,
        step=run.step,
        total_steps=run.total_steps,
        config=run.config,
        out_dir=run.config.get("out_dir", ""),
        created_at=_aware(run.created_at),
        started_at=_aware(run.started_at),
        finished_at=_aware(run.finished_at),
        heartbeat_at=_aware(run.heartbeat_at),
        worker_host=run.worker_host,
        error=error,
        traceback=run.traceback,
        tags=list(run.tags or []),
        notes=run.notes or "",
        parent_run_id=run.parent_run_id,
        sweep_id=run.sweep_id,
        cancel_requested=run.cancel_requested,
        resumed_from_step=run.resumed_from_step,
    )


def effective_status(status: str, heartbeat_at: datetime | None, stale_after_seconds: float) -> str:
    if status == "running" and heartbeat_at is not None:
        if (utcnow() - heartbeat_at).total_seconds() > stale_after_seconds:
            return "crashed"
    return status


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def metric_keys(store: Store, run_ids: Sequence[int]) -> list[str]:
    """Every key any of the runs logged, sorted."""
    with store.session() as session:
        return read_keys(session, run_ids)


def metrics(
    store: Store,
    run_ids: Sequence[int],
    keys: Sequence[str],
    *,
    min_step: int | None = None,
    with_wall_time: bool = False,
) -> dict[int, dict[str, MetricSeries]]:
    """run_id -> key -> MetricSeries (numpy steps and values, wall times on request); pass min_step to fetch
    only the points a live chart does not have yet."""
    with store.session() as session:
        return read_series(session, run_ids, keys, min_step=min_step, with_wall_time=with_wall_time)


def latest_metrics(
    store: Store, run_ids: Sequence[int], keys: Sequence[str]
) -> dict[int, dict[str, tuple[int, float]]]:
    """run_id -> key -> (step, value) at the run's newest step for that key."""
    with store.session() as session:
        return read_latest(session, run_ids, keys)


def checkpoints(store: Store, run_id: int) -> list[CheckpointInfo]:
    with store.session() as session:
        rows = session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step))
        return [
            CheckpointInfo(row.run_id, row.step, row.path, decode_json_floats(row.summary), _aware(row.created_at))
            for row in rows
        ]


def videos(store: Store, run_id: int, step: int | None = None) -> list[VideoInfo]:
    query = select(Video).where(Video.run_id == run_id).order_by(Video.step, Video.task)
    if step is not None:
        query = query.where(Video.step == step)
    with store.session() as session:
        return [
            VideoInfo(row.run_id, row.step, row.task, row.success, row.path, _aware(row.created_at))
            for row in session.scalars(query)
        ]


def list_sweeps(store: Store) -> list[SweepInfo]:
    """Newest first, with their runs' ids and how many runs are in each status."""
    with store.session() as session:
        sweeps = list(session.scalars(select(Sweep).order_by(Sweep.id.desc())))
        members = session.execute(
            select(Run.sweep_id, Run.id, Run.status, Run.heartbeat_at)
            .where(Run.sweep_id.in_([sweep.id for sweep in sweeps]))
            .order_by(Run.id)
        )
        run_ids: dict[int, list[int]] = {}
        counts: dict[int, dict[str, int]] = {}
        for sweep_id, run_id, status, heartbeat_at in members:
            run_ids.setdefault(sweep_id, []).append(run_id)
            status = effective_status(status, heartbeat_at, store.settings.stale_after_seconds)
            counts.setdefault(sweep_id, {}).setdefault(status, 0)
            counts[sweep_id][status] += 1
    return [
        SweepInfo(
            sweep.id,
            sweep.name,
            sweep.grid,
            _aware(sweep.created_at),
            run_ids.get(sweep.id, []),
            counts.get(sweep.id, {}),
        )
        for sweep in sweeps
    ]


_NON_FINITE_SPELLINGS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def decode_json_floats(value: Any) -> Any:
    """Undo store.json_safe: the strings "nan", "inf", "-inf" in a summary were floats."""
    if isinstance(value, str):
        return _NON_FINITE_SPELLINGS.get(value, value)
    if isinstance(value, dict):
        return {k: decode_json_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json_floats(v) for v in value]
    return value
