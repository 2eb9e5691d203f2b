"""The one Celery task: run one attempt of one run through opd_core.train, recording the outcome in the store.

A run's failure is data, not a task failure: the task records `failed` with a message a researcher can act on
(an OpdError's or ConfigError's own message; other exceptions as "Type: message") and the traceback separately,
then returns normally so that Celery has nothing to retry.
"""

from __future__ import annotations

import logging
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opd_core.config import ConfigError, RunConfig
from opd_core.errors import OpdError

from worker import lifecycle
from worker.celery_app import RUN_TASK, app, worker_settings, worker_store
from worker.lifecycle import Claim
from worker.settings import INPUT_PATH_FIELDS, Settings
from worker.sql_sink import SqlSink
from worker.store import Store

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Outcome:
    status: str
    step: int | None = None
    error: str | None = None
    traceback: str | None = None


@app.task(name=RUN_TASK, bind=True, acks_late=True, ignore_result=True)
def run_training(self, run_id: int, attempt: int) -> dict[str, Any]:
    host = self.request.hostname or socket.gethostname()
    return execute_run(worker_store(), worker_settings, run_id, attempt, host)


def execute_run(store: Store, settings: Settings, run_id: int, attempt: int, worker_host: str) -> dict[str, Any]:
    claim = lifecycle.claim(store, run_id, attempt, worker_host)
    if claim is None:
        log.info("run %s attempt %s: not queued as this attempt (duplicate or stale message): dropped",
                 run_id, attempt)
        return {"run_id": run_id, "attempt": attempt, "status": "refused"}
    log.info("run %s attempt %s: claimed by %s (resume=%s)", run_id, attempt, worker_host, claim.resume)
    try:
        sink = SqlSink(store, run_id, attempt, run_dir=claim.config["out_dir"],
                       heartbeat_seconds=settings.heartbeat_seconds, cancel_poll_seconds=settings.cancel_poll_seconds)
    except OSError as exc:  # e.g. a shared data directory that is not mounted on this worker
        lifecycle.finish(store, run_id, attempt, "failed", error=f"cannot write the run folder: {exc}",
                         traceback=traceback.format_exc())
        return {"run_id": run_id, "attempt": attempt, "status": "failed"}
    try:
        outcome = _train(claim, sink, store.data_dir)
    finally:
        sink.close()  # flushes every metric before the status says the run ended
    if not sink.owned:
        log.warning("run %s attempt %s: lost to a newer attempt; its outcome is not recorded", run_id, attempt)
        return {"run_id": run_id, "attempt": attempt, "status": "lost"}
    lifecycle.finish(store, run_id, attempt, outcome.status, step=outcome.step, error=outcome.error,
                     traceback=outcome.traceback)
    log.info("run %s attempt %s: %s%s", run_id, attempt, outcome.status,
             f" ({outcome.error})" if outcome.error else "")
    return {"run_id": run_id, "attempt": attempt, "status": outcome.status}


def _train(claim: Claim, sink: SqlSink, data_dir: Path) -> Outcome:
    try:
        from opd_core.train import train

        config = runnable_config(claim.config, data_dir)
        result = train(config, sink, stop_requested=sink.stop_requested, resume=claim.resume)
        return Outcome(result.status, step=result.step)
    except (ConfigError, OpdError) as exc:
        return Outcome("failed", error=str(exc), traceback=traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - any other failure is recorded on the run, with its traceback
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())


def runnable_config(stored: dict[str, Any], data_dir: Path) -> RunConfig:
    """The stored config with its paths made absolute for this machine."""
    config = RunConfig.from_dict(stored)
    config.out_dir = str(data_dir / config.out_dir)
    for field_name in INPUT_PATH_FIELDS:
        value = getattr(config, field_name)
        if value and not Path(value).is_absolute():
            setattr(config, field_name, str(data_dir / value))
    return config.validate()
