"""Metric store benchmark: batched write throughput and the dashboard's biggest read, on SQLite and PostgreSQL.

    python bench/bench_store.py [--backend sqlite|postgresql|both] [--runs 8 --keys 5 --steps 10000]

Writes runs x keys x steps points in batches the size of a worker's flush (one transaction each, through the
same upsert the SqlSink uses), then reads every series back the way the app does (queries.metrics). Prints one
JSON object. Targets: at least 50,000 points/s written, under 0.5 s for the 8 x 5 x 10,000 read.
PostgreSQL uses a throw-away database on OPD_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from worker import lifecycle, queries  # noqa: E402
from worker.metric_rows import MetricPoint, upsert_metrics  # noqa: E402
from worker.migrate import upgrade_to_head  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Store  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEYS = (
    "train/success",
    "train/entropy",
    "eval/seen_success",
    "eval/unseen_success",
    "time/step_seconds",
    "train/kl",
    "train/loss",
    "time/env_steps",
)


def bench(store: Store, runs: int, keys: int, steps: int, batch_points: int) -> dict:
    upgrade_to_head(store.engine)
    run_ids = [lifecycle.create_run(store, {}, name=f"bench-{i}", queue="cpu", total_steps=steps) for i in range(runs)]
    write_seconds, points = _write(store, run_ids, KEYS[:keys], steps, batch_points)
    read_times, read_cpu_times = [], []
    for _ in range(3):
        started, cpu_started = time.perf_counter(), time.process_time()
        series = queries.metrics(store, run_ids, KEYS[:keys])
        read_times.append(time.perf_counter() - started)
        read_cpu_times.append(time.process_time() - cpu_started)
    read_points = sum(len(s.steps) for by_key in series.values() for s in by_key.values())
    assert read_points == points, (read_points, points)
    started = time.perf_counter()
    queries.latest_metrics(store, run_ids, KEYS[:keys])
    latest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    queries.metric_keys(store, run_ids)
    keys_seconds = time.perf_counter() - started
    return {
        "points": points,
        "batch_points": batch_points,
        "write_seconds": round(write_seconds, 3),
        "write_points_per_second": round(points / write_seconds),
        "read_seconds_first": round(read_times[0], 3),
        "read_seconds_best": round(min(read_times), 3),
        "read_client_cpu_seconds_best": round(min(read_cpu_times), 3),
        "latest_metrics_seconds": round(latest_seconds, 4),
        "metric_keys_seconds": round(keys_seconds, 4),
    }


def _write(store: Store, run_ids: list[int], keys: tuple[str, ...], steps: int, batch_points: int):
    """Each transaction is one worker's flush: `batch_points` consecutive points of one run. Runs take turns,
    the way concurrent workers interleave."""
    rng = random.Random(0)
    flushes: list[tuple[int, list[MetricPoint]]] = []
    steps_per_flush = max(1, batch_points // len(keys))
    for first_step in range(0, steps, steps_per_flush):
        for run_id in run_ids:
            points = [
                MetricPoint(key, step, math.nan if rng.random() < 0.001 else rng.random(), 1.7e9 + step)
                for step in range(first_step, min(steps, first_step + steps_per_flush))
                for key in keys
            ]
            flushes.append((run_id, points))
    started = time.perf_counter()
    for run_id, points in flushes:
        with store.session() as session:
            upsert_metrics(session, run_id, points)
    return time.perf_counter() - started, sum(len(points) for _, points in flushes)


@contextmanager
def sqlite_store():
    with tempfile.TemporaryDirectory(prefix="opd-bench-") as folder:
        store = Store(Settings(data_dir=Path(folder)))
        try:
            yield store
        finally:
            store.close()


@contextmanager
def postgres_store(server_url: str):
    name = f"opd_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    store = Store(
        Settings(
            data_dir=Path(tempfile.gettempdir()),
            database_url=make_url(server_url).set(database=name).render_as_string(False),
        )
    )
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--keys", type=int, default=5, help=f"metric keys per run (at most {len(KEYS)})")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument(
        "--batch-points",
        type=int,
        default=2_000,
        help="points per flush transaction (a worker logging ~20 keys/step flushes about this many)",
    )
    args = parser.parse_args()
    # Shared machines: the load average says how much of the CPU the figures below really had.
    results = {
        "runs": args.runs,
        "keys": args.keys,
        "steps": args.steps,
        "cpus": os.cpu_count(),
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }
    if args.backend in ("sqlite", "both"):
        with sqlite_store() as store:
            results["sqlite"] = bench(store, args.runs, args.keys, args.steps, args.batch_points)
    if args.backend in ("postgresql", "both"):
        with postgres_store(os.environ.get("OPD_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)) as store:
            results["postgresql"] = bench(store, args.runs, args.keys, args.steps, args.batch_points)
    results["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
