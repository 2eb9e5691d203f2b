"""Bring a database to the newest schema; called by every worker and by the app when they start.

Several processes may start at once (two workers, the app), so the upgrade is serialised: on PostgreSQL by a
transaction-level advisory lock (the whole upgrade is one transaction, DDL included), on SQLite by an exclusive
lock on a file next to the database (SQLite is local to one host anyway). A database already at the head
revision is detected without taking any lock, so a normal start costs one small query.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from worker.store import is_unavailable_error, make_engine, unavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""A link to the repository's migrations/ in a checkout; a copy in an installed package."""
# Any fixed 64-bit number works; it only has to be the same in every process that migrates this database.
ADVISORY_LOCK_ID = 0x0BD1AB_5C4E4A


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine_or_url: Engine | str) -> str:
    """Apply any pending migrations; returns the head revision. Raises StoreUnavailable when the database
    cannot be reached or stays locked."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        head = head_revision()
        if current_revision(engine) != head:
            with _migration_lock(engine) as connection:
                if MigrationContext.configure(connection).get_current_revision() != head:
                    config = alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
        return head
    except DBAPIError as exc:
        if is_unavailable_error(exc):
            raise unavailable(engine.url.render_as_string(hide_password=True), exc) from exc
        raise
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            yield connection
        return
    with _sqlite_file_lock(engine), engine.begin() as connection:
        yield connection


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
