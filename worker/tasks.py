"""What the one Celery task does: run one attempt of one run through opd_core.train, recording the outcome.

A run's failure is data, not a task failure: the task records `failed` with a message a researcher can act on
(an OpdError's or ConfigError's own message; other exceptions as "Type: message") and the traceback separately,
then returns normally so that Celery has nothing to retry. The end survives a store outage (worker.run_end):
the last rows and the status are retried until `end_deadline_seconds`, then kept on disk and replayed.

This module imports no Celery: worker.celery_app registers `execute_run` as the task when it builds the worker.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opd_core.config import ConfigError, RunConfig
from opd_core.errors import CheckpointSkippedWarning, OpdError, RankCrashedError
from worker import lifecycle
from worker.lifecycle import Claim
from worker.run_end import RunEnd, record_end
from worker.settings import INPUT_PATH_FIELDS, Settings
from worker.sql_sink import SqlSink
from worker.store import Store, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str
    step: int | None = None
    error: str | None = None
    traceback: str | None = None


def execute_run(store: Store, settings: Settings, run_id: int, attempt: int, worker_host: str) -> dict[str, Any]:
    claim = lifecycle.claim(store, run_id, attempt, worker_host)
    if claim is None:
        log.info("run %s attempt %s: not queued as this attempt (duplicate or stale message): dropped", run_id, attempt)
        return {"run_id": run_id, "attempt": attempt, "status": "refused"}
    log.info(
        "run %s attempt %s: claimed by %s (resume=%s, torch threads=%s)",
        run_id,
        attempt,
        worker_host,
        claim.resume,
        _torch_threads(),
    )
    run_dir = claim.config["out_dir"]
    try:
        sink = SqlSink(
            store,
            run_id,
            attempt,
            run_dir=run_dir,
            heartbeat_seconds=settings.heartbeat_seconds,
            cancel_poll_seconds=settings.cancel_poll_seconds,
        )
    except OSError as exc:  # e.g. a shared data directory that is not mounted on this worker
        lifecycle.finish(
            store,
            run_id,
            attempt,
            "failed",
            error=f"cannot write the run folder: {exc}",
            traceback=traceback.format_exc(),
        )
        return {"run_id": run_id, "attempt": attempt, "status": "failed"}
    outcome = Outcome("failed", error="the worker stopped during the run")
    try:
        outcome = _train(claim, sink, store.data_dir)
    finally:
        # Every metric and artifact row before the status says the run ended; both retried until one deadline.
        deadline = time.monotonic() + settings.end_deadline_seconds
        flushed = sink.close(settings.end_deadline_seconds)
    if not sink.owned:
        log.warning("run %s attempt %s: lost to a newer attempt; its outcome is not recorded", run_id, attempt)
        return {"run_id": run_id, "attempt": attempt, "status": "lost"}
    end = RunEnd(
        run_id=run_id,
        attempt=attempt,
        run_dir=run_dir,
        status=outcome.status,
        step=outcome.step,
        error=outcome.error,
        traceback=outcome.traceback,
        ended_at=utcnow().isoformat(),
        worker_host=worker_host,
    )
    recorded = record_end(store, end, flushed=flushed, deadline=deadline)
    log.info(
        "run %s attempt %s: %s%s (%s)",
        run_id,
        attempt,
        outcome.status,
        f" ({outcome.error})" if outcome.error else "",
        recorded,
    )
    return {"run_id": run_id, "attempt": attempt, "status": outcome.status if recorded != "lost" else "lost"}


def _train(claim: Claim, sink: SqlSink, data_dir: Path) -> Outcome:
    try:
        from opd_core.train import train

        config = runnable_config(claim.config, data_dir)
        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            warnings.simplefilter("always", CheckpointSkippedWarning)  # every skip, not once per worker process
            warnings.showwarning = _recording_skipped_checkpoints(sink, warnings.showwarning)
            result = train(config, sink, stop_requested=sink.stop_requested, resume=claim.resume)
        return Outcome(result.status, step=result.step)
    except (ConfigError, OpdError) as exc:
        return Outcome("failed", error=str(exc), traceback=traceback.format_exc())
    except RankCrashedError as exc:  # a rank of a multi-process run died: like a lost worker, resumable
        return Outcome("crashed", error=str(exc), traceback=traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - any other failure is recorded on the run, with its traceback
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())


def _recording_skipped_checkpoints(sink: SqlSink, show: Callable[..., None]) -> Callable[..., None]:
    """A warnings.showwarning that also writes a damaged checkpoint skipped on resume to the run's events (where
    the dashboard shows why the run went back further than its newest checkpoint) and the worker log."""

    def showwarning(message, category, *args, **kwargs) -> None:
        if not issubclass(category, CheckpointSkippedWarning):
            show(message, category, *args, **kwargs)
            return
        text = str(message).removeprefix("resume: ")
        log.warning("run %s attempt %s: %s", sink.run_id, sink.attempt, text)
        try:
            with sink.store.session() as session:
                lifecycle.add_event(session, sink.run_id, "checkpoint_skipped", text)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the worker log above keeps the warning
            log.warning("run %s: could not record the skipped checkpoint: %s", sink.run_id, exc)

    return showwarning


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")  # imported by the worker's parent before it forked this process
    return None if torch is None else torch.get_num_threads()


def runnable_config(stored: dict[str, Any], data_dir: Path) -> RunConfig:
    """The stored config with its paths made absolute for this machine."""
    config = RunConfig.from_dict(stored)
    config.out_dir = str(data_dir / config.out_dir)
    for field_name in INPUT_PATH_FIELDS:
        value = getattr(config, field_name)
        if value and not Path(value).is_absolute():
            setattr(config, field_name, str(data_dir / value))
    return config.validate()
