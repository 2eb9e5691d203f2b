"""The database connection: engine factory, sessions, and the errors a researcher should see.

SQLite (the embedded default) gets WAL mode, a busy timeout and foreign keys on every connection so that one
writer and many readers (workers, the dashboard) share the file. Any operational failure of the database (a
lock held too long, a server that does not answer) surfaces as `StoreUnavailable` with the URL and the
database's own message, never as a raw driver traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from worker.settings import Settings


class StoreUnavailable(RuntimeError):
    """The database is busy or unreachable; the message says which one and why."""


def utcnow() -> datetime:
    """Naive UTC, the one time representation the tables use on every database."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(url: str, *, sqlite_busy_timeout_seconds: float = 10.0) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, sqlite_busy_timeout_seconds)
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    # pre_ping: a pooled connection that died with a server restart is replaced instead of failing a query.
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: str, busy_timeout_seconds: float) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_seconds})

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against process crashes in WAL mode; only a power cut can lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


def describe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    original = getattr(exc, "orig", None) or exc
    reason = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return StoreUnavailable(f"database unavailable ({describe_url(url)}): {reason}")


def is_unavailable_error(exc: BaseException) -> bool:
    """Operational errors (locks, lost connections, unreachable servers) as opposed to bugs in a query."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


class Store:
    """An engine bound to a data directory: the handle every reader and writer of the lab shares."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.resolved_database_url
        self.engine = make_engine(self.url, sqlite_busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on error."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as exc:
            if is_unavailable_error(exc):
                raise unavailable(self.url, exc) from exc
            raise

    def after_fork(self) -> None:
        """In a forked child: drop the parent's pooled connections without closing them under the parent."""
        self.engine.dispose(close=False)

    def close(self) -> None:
        self.engine.dispose()


def json_safe(value: Any) -> Any:
    """JSON columns must not hold NaN/Infinity (PostgreSQL's json type rejects them): write them as strings,
    the same spelling opd_core's LocalDirSink uses."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
