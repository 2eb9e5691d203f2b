"""Where the lab keeps its state, read from the environment when a process starts using the lab (never at import).

One data directory holds everything by default: the SQLite database, the filesystem broker's folders and one
folder per run (`runs/<run_id>/`, the run's `out_dir`). `OPD_DATABASE_URL` and `OPD_BROKER_URL` switch to
PostgreSQL and Redis so that workers on other machines can share the queue and the store; the data directory
must then be shared too (a network mount), because the database stores artifact paths relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

QUEUES = ("cpu", "gpu")

# Config fields naming inputs: a relative path in them is relative to the data directory, so that workers on
# other machines sharing that directory find it (e.g. a teacher that is another run's checkpoint,
# "runs/3/checkpoints/step_100").
INPUT_PATH_FIELDS = ("teacher_checkpoint", "student_checkpoint", "demos")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at `data_dir/opd.sqlite`."""
    broker_url: str = ""
    """Celery broker URL; empty means the filesystem broker under `data_dir/broker`."""
    stale_after_seconds: float = 30.0
    """A running run whose heartbeat is older than this is shown as crashed."""
    heartbeat_seconds: float = 1.0
    """How often a worker flushes buffered metrics and beats the run's heartbeat (at most 2 s, see SqlSink)."""
    cancel_poll_seconds: float = 0.1
    """Smallest interval between two reads of the cancel flag (a primary-key lookup, so it can be short)."""
    sqlite_busy_timeout_seconds: float = 10.0
    """How long a SQLite statement waits for another process's write lock before StoreUnavailable."""
    reconcile_seconds: float = 30.0
    """How often each worker's reconciler looks for stranded queued runs, crashed runs to resume and run ends
    that an outage kept from the store (it also runs once when the worker starts)."""
    requeue_after_seconds: float = 120.0
    """A run queued this long with no message waiting for it in the broker is sent again."""
    end_deadline_seconds: float = 300.0
    """How long the end of a run (last metrics, checkpoint rows, final status) keeps retrying a store that is
    down before the worker leaves it on disk (run folder) for the next contact to replay."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("OPD_DATA_DIR", "./opd-data")).resolve(),
            database_url=env.get("OPD_DATABASE_URL", ""),
            broker_url=env.get("OPD_BROKER_URL", ""),
            stale_after_seconds=float(env.get("OPD_STALE_SECONDS", 30.0)),
            heartbeat_seconds=min(2.0, float(env.get("OPD_HEARTBEAT_SECONDS", 1.0))),
            cancel_poll_seconds=float(env.get("OPD_CANCEL_POLL_SECONDS", 0.1)),
            sqlite_busy_timeout_seconds=float(env.get("OPD_SQLITE_BUSY_TIMEOUT", 10.0)),
            reconcile_seconds=float(env.get("OPD_RECONCILE_SECONDS", 30.0)),
            requeue_after_seconds=float(env.get("OPD_REQUEUE_AFTER_SECONDS", 120.0)),
            end_deadline_seconds=float(env.get("OPD_END_DEADLINE_SECONDS", 300.0)),
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'opd.sqlite'}"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def run_dir(self, run_id: int) -> str:
        """The run's out_dir relative to the data directory (what the database stores)."""
        return f"runs/{run_id}"

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in another process (a worker)."""
        return {
            "OPD_DATA_DIR": str(self.data_dir),
            "OPD_DATABASE_URL": self.database_url,
            "OPD_BROKER_URL": self.broker_url,
            "OPD_STALE_SECONDS": str(self.stale_after_seconds),
            "OPD_HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            "OPD_CANCEL_POLL_SECONDS": str(self.cancel_poll_seconds),
            "OPD_SQLITE_BUSY_TIMEOUT": str(self.sqlite_busy_timeout_seconds),
            "OPD_RECONCILE_SECONDS": str(self.reconcile_seconds),
            "OPD_REQUEUE_AFTER_SECONDS": str(self.requeue_after_seconds),
            "OPD_END_DEADLINE_SECONDS": str(self.end_deadline_seconds),
        }
