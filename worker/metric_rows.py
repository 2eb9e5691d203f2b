"""The metrics table: batched upserts and fast series reads, with NaN and infinities kept faithfully.

Writes are upserts on (run, key, step), so a step written twice (a retried flush, a resumed run re-logging a
step) is stored once, the last write winning. NaN is stored as NULL and read back as NaN; +/-inf are stored as
themselves (see models.Metric).

Both hot paths go below the ORM, because per-row Python overhead is the whole cost at these sizes:
- writes: SQLite gets one executemany of a prepared upsert; PostgreSQL gets one INSERT ... SELECT FROM
  unnest(arrays) with binary parameters (a few times faster than executemany or multi-row VALUES there);
- reads: one query per (run, key) returning only (step, value), so a 10,000-point series is two columns of
  plain numbers that numpy converts in one call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from worker.models import Metric


@dataclass(frozen=True)
class MetricPoint:
    key: str
    step: int
    value: float
    wall_time: float


@dataclass
class MetricSeries:
    """One run's key in step order, as numpy arrays."""

    steps: np.ndarray  # int64
    values: np.ndarray  # float64, NaN and +/-inf as logged
    wall_times: np.ndarray | None = None  # float64 epoch seconds, only when asked for


def stored_value(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def loaded_value(value: float | None) -> float:
    return math.nan if value is None else float(value)


def upsert_metrics(session: Session, run_id: int, points: Iterable[MetricPoint]) -> int:
    """Insert or overwrite points of one run; returns how many rows were written."""
    latest: dict[tuple[str, int], MetricPoint] = {}
    for point in points:  # one statement must not touch a row twice (PostgreSQL refuses that)
        latest[(point.key, int(point.step))] = point
    if not latest:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _upsert_postgresql(session, run_id, list(latest.values()))
    elif dialect == "sqlite":
        _upsert_sqlite(session, run_id, list(latest.values()))
    else:
        raise NotImplementedError(f"metric writes are written for sqlite and postgresql, not {dialect}")
    return len(latest)


_SQLITE_UPSERT = sqlite.insert(Metric.__table__)
_SQLITE_UPSERT = _SQLITE_UPSERT.on_conflict_do_update(
    index_elements=["run_id", "key", "step"],
    set_={"value": _SQLITE_UPSERT.excluded.value, "wall_time": _SQLITE_UPSERT.excluded.wall_time},
)


def _upsert_sqlite(session: Session, run_id: int, points: list[MetricPoint]) -> None:
    rows = [
        {
            "run_id": run_id,
            "key": p.key,
            "step": int(p.step),
            "value": stored_value(p.value),
            "wall_time": float(p.wall_time),
        }
        for p in points
    ]
    session.connection().execute(_SQLITE_UPSERT, rows)  # a Table statement: Core executemany, no ORM bookkeeping


_POSTGRESQL_UPSERT = (
    "INSERT INTO metrics (run_id, key, step, value, wall_time) "
    "SELECT %b::integer, * FROM unnest(%b::varchar[], %b::integer[], %b::float8[], %b::float8[]) "
    "ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time"
)


def _upsert_postgresql(session: Session, run_id: int, points: list[MetricPoint]) -> None:
    columns = (
        [p.key for p in points],
        [int(p.step) for p in points],
        [stored_value(p.value) for p in points],
        [float(p.wall_time) for p in points],
    )
    driver_connection = session.connection().connection.driver_connection
    with driver_connection.cursor() as cursor:
        cursor.execute(_POSTGRESQL_UPSERT, (run_id, *columns), binary=True)


def delete_after(session: Session, run_id: int, step: int) -> None:
    session.execute(delete(Metric).where(Metric.run_id == run_id, Metric.step > step))


def max_step(session: Session, run_id: int) -> int | None:
    return session.scalar(select(Metric.step).where(Metric.run_id == run_id).order_by(Metric.step.desc()).limit(1))


def read_series(
    session: Session,
    run_ids: Sequence[int],
    keys: Sequence[str],
    *,
    min_step: int | None = None,
    with_wall_time: bool = False,
) -> dict[int, dict[str, MetricSeries]]:
    """run_id -> key -> series, for every (run, key) pair that has points (missing pairs are absent)."""
    dialect = session.get_bind().dialect.name
    columns = "step, value, wall_time" if with_wall_time else "step, value"
    mark = "?" if dialect == "sqlite" else "%s"
    sql = f"SELECT {columns} FROM metrics WHERE run_id = {mark} AND key = {mark} AND step >= {mark} ORDER BY step"
    driver_connection = session.connection().connection.driver_connection
    cursor = driver_connection.cursor(binary=True) if dialect == "postgresql" else driver_connection.cursor()
    result: dict[int, dict[str, MetricSeries]] = {}
    try:
        for run_id in dict.fromkeys(run_ids):
            for key in dict.fromkeys(keys):
                cursor.execute(sql, (int(run_id), key, -(2**31) if min_step is None else int(min_step)))
                rows = cursor.fetchall()
                if rows:
                    result.setdefault(run_id, {})[key] = _series(rows, with_wall_time)
    finally:
        cursor.close()
    return result


def _series(rows: list[tuple], with_wall_time: bool) -> MetricSeries:
    # fromiter over the flattened rows is about twice as fast as np.array(rows); None (NULL, i.e. NaN) becomes
    # nan, and steps are exact in float64 below 2**53.
    width = len(rows[0])
    table = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width).reshape(-1, width)
    return MetricSeries(
        steps=table[:, 0].astype(np.int64),
        values=np.ascontiguousarray(table[:, 1]),
        wall_times=np.ascontiguousarray(table[:, 2]) if with_wall_time else None,
    )


def read_latest(
    session: Session, run_ids: Sequence[int], keys: Sequence[str]
) -> dict[int, dict[str, tuple[int, float]]]:
    """run_id -> key -> (step, value) at the newest step: one backward index probe per pair."""
    latest = (
        select(Metric.step, Metric.value)
        .where(Metric.run_id == bindparam("run_id"), Metric.key == bindparam("key"))
        .order_by(Metric.step.desc())
        .limit(1)
    )
    result: dict[int, dict[str, tuple[int, float]]] = {}
    for run_id in dict.fromkeys(run_ids):
        for key in dict.fromkeys(keys):
            row = session.execute(latest, {"run_id": run_id, "key": key}).first()
            if row is not None:
                result.setdefault(run_id, {})[key] = (row.step, loaded_value(row.value))
    return result


# A loose index scan: jump from one distinct key to the next through the primary key instead of reading every
# point (neither SQLite nor PostgreSQL does that for SELECT DISTINCT on their own).
_DISTINCT_KEYS = text(
    "WITH RECURSIVE found(key) AS ("
    " SELECT MIN(key) FROM metrics WHERE run_id = :run_id"
    " UNION ALL"
    " SELECT (SELECT MIN(key) FROM metrics WHERE run_id = :run_id AND key > found.key) FROM found"
    " WHERE found.key IS NOT NULL"
    ") SELECT key FROM found WHERE key IS NOT NULL"
)


def read_keys(session: Session, run_ids: Sequence[int]) -> list[str]:
    keys: set[str] = set()
    for run_id in dict.fromkeys(run_ids):
        keys.update(session.scalars(_DISTINCT_KEYS, {"run_id": int(run_id)}))
    return sorted(keys)
