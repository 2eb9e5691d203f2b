"""The Runs page's table: one plain row per run (status, method, key settings, latest numbers, duration)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Protocol, Sequence

from app.run_groups import method_label

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "crashed")
ACTIVE_STATUSES = ("queued", "running")
RESUMABLE_STATUSES = ("crashed", "cancelled", "failed")
LATEST_KEYS = ("train/success", "eval/seen_success", "eval/unseen_success", "train/entropy")
"""The metrics the table shows; fetched with one latest_metrics call for every listed run."""


class RunLike(Protocol):
    id: int
    name: str
    status: str
    progress: float
    step: int
    total_steps: int
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    tags: list[str]
    notes: str
    sweep_id: int | None


def run_rows(runs: Sequence[RunLike], latest: Mapping[int, Mapping[str, tuple[int, float]]],
             sweep_names: Mapping[int, str], now: datetime | None = None) -> list[dict[str, Any]]:
    """Rows in the order given; numbers that a run has not logged yet are None (an empty cell)."""
    now = now or datetime.now(timezone.utc)
    return [_row(run, latest.get(run.id, {}), sweep_names, now) for run in runs]


def _row(run: RunLike, latest: Mapping[str, tuple[int, float]], sweep_names: Mapping[int, str],
         now: datetime) -> dict[str, Any]:
    config = run.config
    return {
        "id": run.id,
        "name": run.name,
        "status": status_text(run),
        "progress": float(run.progress),
        "method": method_label(config),
        "suite": config.get("suite", ""),
        "settings": settings_text(config),
        "train success": _value(latest, "train/success"),
        "seen success": _value(latest, "eval/seen_success"),
        "unseen success": _value(latest, "eval/unseen_success"),
        "entropy": _value(latest, "train/entropy"),
        "duration": format_duration(duration_seconds(run, now)),
        "sweep": sweep_names.get(run.sweep_id, "") if run.sweep_id is not None else "",
        "tags": ", ".join(run.tags),
        "notes": run.notes,
        "error": run.error or "",
    }


def status_text(run: RunLike) -> str:
    """Plain words (no emoji: a table cell is also read in CSV exports and in browsers without emoji fonts)."""
    if run.status == "running":
        return f"running {run.step}/{run.total_steps}"
    if run.status == "failed" and run.error:
        return f"failed: {run.error.strip().splitlines()[0][:80]}"
    return run.status


def settings_text(config: Mapping[str, Any]) -> str:
    """The settings a researcher scans for: G, B, lr, temperature, steps (and GRPO steps when chained)."""
    parts = [f"G={config.get('group_size')}", f"B={config.get('batch_tasks')}", f"lr={config.get('lr')}",
             f"T={config.get('temperature')}", f"steps={config.get('steps')}"]
    if config.get("pipeline") == "opd_then_grpo":
        parts.append(f"+{config.get('grpo_steps')} GRPO")
    parts.append(f"seed={config.get('seed')}")
    return " · ".join(parts)


def _value(latest: Mapping[str, tuple[int, float]], key: str) -> float | None:
    return float(latest[key][1]) if key in latest else None


def duration_seconds(run: RunLike, now: datetime) -> float | None:
    """Time spent running so far (running) or in total (ended); None for a run that never started."""
    if run.started_at is None:
        return None
    end = run.finished_at or (now if run.status == "running" else None)
    return None if end is None else max(0.0, (end - run.started_at).total_seconds())


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def any_active(runs: Sequence[RunLike]) -> bool:
    return any(run.status in ACTIVE_STATUSES for run in runs)
