"""The store's tables as typed SQLAlchemy 2.0 models (the Alembic migrations create exactly these).

Times are naive UTC datetimes (the same on SQLite and PostgreSQL); metric wall times are epoch seconds.
Artifact paths are relative to the data directory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled", "crashed")
TERMINAL_STATUSES = ("finished", "failed", "cancelled", "crashed")

# Named constraints: Alembic's batch mode (SQLite) can only alter constraints it can name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Sweep(Base):
    """A named group of runs launched together from a grid over config fields."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    grid: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index(None, "status"),
        Index(None, "sweep_id"),
        # Run ids name run folders: SQLite must never hand out the id of a deleted run again.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]]
    """The validated RunConfig as a dict; its out_dir is the run folder relative to the data directory."""
    status: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped by every resume. A broker message carries the attempt it was sent for, so that a stale message
    (a Redis redelivery, a duplicate) can never start the run again: see lifecycle.claim."""
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    """The next attempt continues from the newest checkpoint instead of starting over."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker_host: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]]
    notes: Mapped[str] = mapped_column(Text, default="")
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"))
    queued_at: Mapped[datetime | None]
    """When the current attempt's message was (last) sent: the reconciler re-sends a run queued too long
    with no message waiting for it."""
    resumed_from_step: Mapped[int | None] = mapped_column(Integer)
    """The checkpoint step the current attempt resumed from (None: it started from scratch)."""


class RunEvent(Base):
    """A run's status history: every status change, re-queue, resume and attempt, with why."""

    __tablename__ = "run_events"
    __table_args__ = (Index(None, "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    """queued | running | finished | failed | cancelled | crashed | cancel | requeued | resume | resumed |
    replayed"""
    message: Mapped[str] = mapped_column(Text, default="")


class Metric(Base):
    """One scalar per (run, key, step).

    The primary key is both the uniqueness rule and the index that reads one run's key in step order. On SQLite
    the table is stored in that order (WITHOUT ROWID); on PostgreSQL the key also carries the value (INCLUDE)
    so that reading a series is an index-only scan. There is deliberately no foreign key to runs: its per-row
    check cost a third of PostgreSQL's write throughput; deleting a run deletes its metrics explicitly
    (api.delete) and a worker whose run disappeared stops at its next heartbeat. Non-finite values: +/-inf are stored as themselves (both
    databases keep them), NaN as NULL (SQLite turns NaN into NULL anyway), so NULL means NaN and a NaN never
    counts in MIN/MAX/AVG.
    """

    __tablename__ = "metrics"
    __table_args__ = (
        PrimaryKeyConstraint("run_id", "key", "step", postgresql_include=["value"]),
        {"sqlite_with_rowid": False},
    )

    run_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Double)
    wall_time: Mapped[float] = mapped_column(Double)
    """Epoch seconds when the worker logged the point."""


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))
    summary: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("run_id", "step", "task"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    """The checkpoint step whose policy the video shows."""
    task: Mapped[str] = mapped_column(String(200))
    success: Mapped[bool]
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
