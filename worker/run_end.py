"""The end of a run survives a store outage: the final status is retried until a deadline, and if the store is
still down it is written to the run folder (`end.pending.json`) and replayed, exactly once, at the next contact
(a worker's reconciler: at its start and on its timer).

Exactly once: the replay writes the run's missing metric, checkpoint and video rows (from the run folder's
write-ahead log, idempotent upserts) and the final status in one transaction that only applies while the run is
still at that attempt and has not ended (running, or crashed because its heartbeat stopped); the file is removed
after the commit, and a second replay of a file that survived finds the run ended and only removes the file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from worker import lifecycle
from worker.models import Run
from worker.sql_sink import restore_from_run_folder
from worker.store import Store

log = logging.getLogger(__name__)

PENDING_END = "end.pending.json"


@dataclass(frozen=True)
class RunEnd:
    """How an attempt ended, as the worker saw it."""

    run_id: int
    attempt: int
    run_dir: str
    """The run folder relative to the data directory."""
    status: str
    step: int | None = None
    error: str | None = None
    traceback: str | None = None
    ended_at: str = ""
    """ISO time (naive UTC) when the worker ended the attempt."""
    worker_host: str = ""


def record_end(store: Store, end: RunEnd, *, flushed: bool, deadline: float) -> str:
    """Write the attempt's final status, retrying until `deadline` (time.monotonic()) while the store fails.
    `flushed`: the sink's final flush got through (else the status must wait: it may only follow every row).
    Returns "recorded", "lost" (the run is no longer at this attempt) or "pending" (left on disk)."""
    tries = 0
    while flushed:
        try:
            return (
                "recorded"
                if lifecycle.finish(
                    store, end.run_id, end.attempt, end.status, step=end.step, error=end.error, traceback=end.traceback
                )
                else "lost"
            )
        except Exception as exc:  # any failure to write the end is retried, then kept on disk
            if time.monotonic() >= deadline:
                log.warning("run %s: final status still not written at the deadline: %s", end.run_id, exc)
                break
            if not tries:
                log.warning("run %s: final status not written, retrying until the deadline: %s", end.run_id, exc)
            tries += 1
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    path = write_pending(store.data_dir, end)
    log.warning(
        "run %s attempt %s: the store is unavailable; its end (%s) is kept in %s and will be recorded at "
        "the next contact",
        end.run_id,
        end.attempt,
        end.status,
        path,
    )
    return "pending"


def write_pending(data_dir: Path, end: RunEnd) -> Path:
    folder = data_dir / end.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PENDING_END
    partial = folder / f".{PENDING_END}.partial"
    with open(partial, "w") as file:
        json.dump(asdict(end), file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return path


def replay_pending_ends(store: Store) -> list[int]:
    """Record every run end an outage left on disk under the data directory; returns the runs recorded."""
    recorded = []
    for path in sorted((store.data_dir / "runs").glob(f"*/{PENDING_END}")):
        try:
            run_id = replay(store, path)
        except FileNotFoundError:  # another worker replayed it first
            continue
        if run_id is not None:
            recorded.append(run_id)
    return recorded


def replay(store: Store, path: Path) -> int | None:
    """Record one pending end; its run id when it was written, None when the run had moved on (the file is
    dropped).
    Raises StoreUnavailable while the store is still down (the file stays for the next try)."""
    end = RunEnd(**json.loads(path.read_text()))
    with store.session() as session:
        open_attempt = session.execute(
            select(Run.id).where(
                Run.id == end.run_id, Run.attempt == end.attempt, Run.status.in_(("running", "crashed"))
            )
        ).first()
        written = False
        if open_attempt is not None:
            restore_from_run_folder(session, end.run_id, store.data_dir, end.run_dir, end.step)
            values = lifecycle.finish_values(end.status, step=end.step, error=end.error, traceback=end.traceback)
            if end.ended_at:
                values["finished_at"] = values["heartbeat_at"] = datetime.fromisoformat(end.ended_at)
            written = lifecycle.finish_in(
                session,
                end.run_id,
                end.attempt,
                end.status,
                values,
                note=f" (recorded after a store outage; {end.worker_host or 'its worker'}"
                f" ended it at {end.ended_at or 'an unknown time'} UTC)",
            )
    path.unlink(missing_ok=True)
    if written:
        log.warning(
            "run %s attempt %s: its end (%s) recorded after a store outage", end.run_id, end.attempt, end.status
        )
    else:
        log.info("run %s attempt %s: pending end dropped, the run moved on", end.run_id, end.attempt)
    return end.run_id if written else None
