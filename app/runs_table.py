"""The Runs page's table: one plain row per run (status, method, the settings that differ, latest numbers,
duration, attempt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from app.run_groups import IDENTITY_FIELDS, SHORT_FIELD_NAMES, method_label

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "crashed")
ACTIVE_STATUSES = ("queued", "running")
RESUMABLE_STATUSES = ("crashed", "cancelled", "failed")
LATEST_KEYS = ("train/success", "eval/seen_success", "eval/unseen_success", "train/entropy")
"""The metrics the table shows; fetched with one latest_metrics call for every listed run."""
COLUMN_ORDER = (
    "id",
    "page",
    "name",
    "status",
    "progress",
    "method",
    "suite",
    "settings",
    "train success",
    "seen success",
    "unseen success",
    "entropy",
    "duration",
    "attempt",
    "sweep",
    "tags",
    "notes",
)
"""The table's columns on screen (the error's first line is in the status; the run page has it all)."""
NOT_SETTINGS = (IDENTITY_FIELDS - {"seed"}) | {"pipeline", "objective", "suite", "tasks", "unseen_tasks"}
"""Fields the table shows elsewhere (method, suite) or that only name things: never in the settings column."""
RETRY_KINDS = ("requeued", "re-queued", "resumed", "retried", "redelivered")
"""run_events kinds that explain why a run is on a later attempt."""


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


def run_rows(
    runs: Sequence[RunLike],
    latest: Mapping[int, Mapping[str, tuple[int, float]]],
    sweep_names: Mapping[int, str],
    now: datetime | None = None,
    reasons: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows in the order given; numbers that a run has not logged yet are None (an empty cell). The settings
    column names only the fields that differ between the given runs (the key settings when none differ);
    `reasons` (run id -> why it is on a later attempt) go into the status."""
    now = now or datetime.now(UTC)
    differing = differing_settings([run.config for run in runs])
    return [_row(run, latest.get(run.id, {}), sweep_names, now, differing, (reasons or {}).get(run.id)) for run in runs]


def _row(
    run: RunLike,
    latest: Mapping[str, tuple[int, float]],
    sweep_names: Mapping[int, str],
    now: datetime,
    differing: Sequence[str],
    reason: str | None,
) -> dict[str, Any]:
    config = run.config
    status = status_text(run)
    return {
        "id": run.id,
        "name": run.name,
        "status": f"{status} ({reason})" if reason else status,
        "progress": float(run.progress),
        "method": method_label(config),
        "suite": config.get("suite", ""),
        "settings": fields_text(config, differing) if differing else settings_text(config),
        "attempt": int(getattr(run, "attempt", 1) or 1),
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
    parts = [
        f"G={config.get('group_size')}",
        f"B={config.get('batch_tasks')}",
        f"lr={config.get('lr')}",
        f"T={config.get('temperature')}",
        f"steps={config.get('steps')}",
    ]
    if config.get("pipeline") == "opd_then_grpo":
        parts.append(f"+{config.get('grpo_steps')} GRPO")
    parts.append(f"seed={config.get('seed')}")
    return " · ".join(parts)


def differing_settings(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config fields whose values differ between the runs, in config order (method, suite and names aside)."""
    names = list(dict.fromkeys(name for config in configs for name in config))
    return [
        name for name in names if name not in NOT_SETTINGS and len({repr(config.get(name)) for config in configs}) > 1
    ]


def fields_text(config: Mapping[str, Any], names: Sequence[str]) -> str:
    """'G=4 · lr=0.001 · seed=1': the named fields of one config, short names where the lab has them."""
    return " · ".join(f"{SHORT_FIELD_NAMES.get(name, name)}={_short(config.get(name))}" for name in names)


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"[{len(value)}]" if len(value) > 2 else ",".join(map(str, value))
    if value in ("", None):
        return "—"
    if isinstance(value, str) and "/" in value:
        return "…/" + value.rstrip("/").rsplit("/", 1)[-1]  # a path: its last part
    return str(value)


def settings_table(runs: Sequence[RunLike]) -> list[dict[str, Any]]:
    """Rows = config fields (the ones that differ first), columns = runs ('#id name'): the settings in full."""
    configs = [run.config for run in runs]
    differing = differing_settings(configs)
    names = list(dict.fromkeys(name for config in configs for name in config))
    ordered = [*differing, *[name for name in names if name not in differing]]
    return [
        {
            "field": name,
            "differs": name in differing,
            **{f"#{run.id} {run.name}": _full(run.config.get(name)) for run in runs},
        }
        for name in ordered
    ]


def _full(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def filter_runs(
    runs: Sequence[RunLike], status: str | None = None, sweep_id: int | None = None, tag: str | None = None
) -> list[RunLike]:
    """The runs list_runs(status, sweep_id, tag) would return, filtered from one listing of every run."""
    return [
        run
        for run in runs
        if (status is None or run.status == status)
        and (sweep_id is None or run.sweep_id == sweep_id)
        and (tag is None or tag in run.tags)
    ]


def retry_reasons(lab: Any, runs: Sequence[RunLike]) -> dict[int, str]:
    """Run id -> why a run on a later attempt was queued again ("resumed from step 40", "re-queued: ..."), from
    the API's run_events where it has them (asked only for runs past their first attempt)."""
    events_of = getattr(lab, "run_events", None)
    reasons = {}
    for run in runs:
        attempt = int(getattr(run, "attempt", 1) or 1)
        if attempt <= 1:
            continue
        events = list(events_of(run.id)) if callable(events_of) else []
        retries = [event for event in events if event.kind in RETRY_KINDS]
        if retries:
            latest = max(retries, key=lambda event: event.at)
            reasons[run.id] = latest.message or latest.kind
    return reasons


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
