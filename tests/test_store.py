"""The store on both databases: metric round trips (NaN, infinities), upserts, migrations, run transitions,
clear errors when the database is busy or unreachable."""

from __future__ import annotations

import math
import sqlite3
import threading

import numpy as np
import pytest

from worker import lifecycle, queries
from worker.metric_rows import MetricPoint, upsert_metrics
from worker.migrate import current_revision, head_revision, upgrade_to_head
from worker.settings import Settings
from worker.store import Store, StoreUnavailable

pytestmark = pytest.mark.timeout(60)

SPECIAL_VALUES = [0.0, 1.0, -2.5, math.pi, 1e-308, 5e-324, 1.7976931348623157e308, math.nan, math.inf, -math.inf]


def new_run(store, **kwargs) -> int:
    return lifecycle.create_run(store, {"name": "t"}, name="t", queue="cpu", total_steps=10, **kwargs)


def write(store, run_id, points):
    with store.session() as session:
        upsert_metrics(session, run_id, points)


def test_metric_values_round_trip_exactly_including_nan_and_infinities(store):
    run_id = new_run(store)
    points = [MetricPoint("train/x", step, value, 1000.0 + step) for step, value in enumerate(SPECIAL_VALUES)]
    write(store, run_id, points)

    series = queries.metrics(store, [run_id], ["train/x"], with_wall_time=True)[run_id]["train/x"]

    assert series.steps.tolist() == list(range(len(SPECIAL_VALUES)))
    expected = np.array(SPECIAL_VALUES)
    assert series.values.view(np.int64).tolist() == expected.view(np.int64).tolist()  # bit for bit
    assert series.wall_times.tolist() == [1000.0 + s for s in range(len(SPECIAL_VALUES))]
    latest = queries.latest_metrics(store, [run_id], ["train/x"])
    assert latest[run_id]["train/x"] == (len(SPECIAL_VALUES) - 1, -math.inf)


def test_a_step_written_twice_is_stored_once_with_the_last_value(store):
    run_id = new_run(store)
    write(store, run_id, [MetricPoint("k", 1, 1.0, 0.0), MetricPoint("k", 2, 2.0, 0.0), MetricPoint("k", 2, 3.0, 0.0)])
    write(store, run_id, [MetricPoint("k", 1, math.nan, 0.0)])

    series = queries.metrics(store, [run_id], ["k"])[run_id]["k"]
    assert series.steps.tolist() == [1, 2]
    assert math.isnan(series.values[0]) and series.values[1] == 3.0


def test_series_are_grouped_per_run_and_key_and_can_start_at_a_step(store):
    first, second = new_run(store), new_run(store)
    write(store, first, [MetricPoint(key, s, s * 1.0, 0.0) for s in range(100) for key in ("a", "b")])
    write(store, second, [MetricPoint("a", s, -s * 1.0, 0.0) for s in range(0, 100, 10)])

    result = queries.metrics(store, [first, second], ["a", "b", "missing"])
    assert sorted(result[first]) == ["a", "b"] and sorted(result[second]) == ["a"]
    assert np.array_equal(result[second]["a"].values, -np.arange(0, 100, 10.0))
    assert queries.metrics(store, [first], ["a"], min_step=95)[first]["a"].steps.tolist() == [95, 96, 97, 98, 99]
    assert queries.metric_keys(store, [first, second]) == ["a", "b"]


def test_checkpoint_summaries_keep_non_finite_values(store):
    run_id = new_run(store)
    lifecycle.record_checkpoint(
        store, run_id, 5, "runs/1/checkpoints/step_5", {"eval/success": math.nan, "loss": math.inf, "n": 3}
    )
    lifecycle.record_checkpoint(store, run_id, 5, "runs/1/checkpoints/step_5", {"eval/success": 0.5})
    (checkpoint,) = queries.checkpoints(store, run_id)
    assert checkpoint.step == 5 and checkpoint.summary == {"eval/success": 0.5}
    lifecycle.record_checkpoint(store, run_id, 6, "p", {"a": math.nan, "b": [math.inf, -math.inf]})
    summary = queries.checkpoints(store, run_id)[1].summary
    assert math.isnan(summary["a"]) and summary["b"] == [math.inf, -math.inf]


def test_migrations_apply_twice_and_concurrently(db_settings):
    store = Store(db_settings)
    errors = []

    def upgrade():
        try:
            upgrade_to_head(store.engine)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert upgrade_to_head(store.engine) == head_revision() == current_revision(store.engine)
    assert upgrade_to_head(store.url) == head_revision()  # from a URL too
    store.close()


def test_a_claim_is_won_once_and_only_by_the_current_attempt(store):
    run_id = new_run(store)
    assert lifecycle.claim(store, run_id, attempt=2, worker_host="a") is None  # a message from no attempt
    claim = lifecycle.claim(store, run_id, attempt=1, worker_host="a")
    assert claim is not None and claim.config["out_dir"] == f"runs/{run_id}" and claim.resume is False
    assert lifecycle.claim(store, run_id, attempt=1, worker_host="b") is None  # a redelivered message
    assert queries.get_run(store, run_id).status == "running"


def age_heartbeat(store, run_id: int, seconds: float) -> None:
    """Move the run's last heartbeat `seconds` into the past: as if its worker had gone silent that long ago."""
    from datetime import timedelta

    from worker.models import Run

    with store.session() as session:  # in Python: SQLite has no datetime arithmetic for SQLAlchemy's DateTime
        run = session.get(Run, run_id)
        run.heartbeat_at -= timedelta(seconds=seconds)


def test_a_stale_heartbeat_reads_as_crashed_and_the_run_can_be_resumed(store):
    run_id = new_run(store)
    lifecycle.claim(store, run_id, 1, "a")
    assert queries.list_runs(store, status="running")[0].id == run_id
    assert lifecycle.reap_stale(store, store.settings.stale_after_seconds) == []  # a fresh heartbeat is alive
    age_heartbeat(store, run_id, store.settings.stale_after_seconds + 1)

    assert queries.get_run(store, run_id).status == "crashed"
    assert [r.id for r in queries.list_runs(store, status="crashed")] == [run_id]
    assert queries.list_runs(store, status="running") == []
    assert lifecycle.reap_stale(store, store.settings.stale_after_seconds) == [run_id]

    assert lifecycle.requeue_for_resume(store, run_id, store.settings.stale_after_seconds) == (2, "cpu")
    assert lifecycle.claim(store, run_id, 1, "old message") is None
    assert lifecycle.claim(store, run_id, 2, "b").resume is True
    with store.session() as session:  # the first attempt's worker comes back: it no longer owns the run
        assert lifecycle.touch(session, run_id, 1) is False
        assert lifecycle.touch(session, run_id, 2, step=3, total=10) is True
    assert queries.get_run(store, run_id).progress == pytest.approx(0.3)


def test_cancelling_a_queued_run_cancels_it_at_once(store):
    queued, running = new_run(store), new_run(store)
    lifecycle.claim(store, running, 1, "a")
    assert lifecycle.request_cancel(store, queued) == "cancelled"
    assert lifecycle.request_cancel(store, running) == "running"
    assert lifecycle.cancel_requested(store, running, 1) is True
    assert lifecycle.claim(store, queued, 1, "a") is None


def test_a_locked_sqlite_database_raises_store_unavailable(tmp_path):
    settings = Settings(data_dir=tmp_path, sqlite_busy_timeout_seconds=0.2)
    store = Store(settings)
    upgrade_to_head(store.engine)
    blocker = sqlite3.connect(tmp_path / "opd.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="database unavailable .*opd.sqlite.*locked"):
            new_run(store)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    new_run(store)  # fine again once the lock is gone
    store.close()


def test_an_unreachable_server_raises_store_unavailable(tmp_path):
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    with pytest.raises(StoreUnavailable, match="database unavailable .*127.0.0.1:1"):
        upgrade_to_head(url)
    store = Store(Settings(data_dir=tmp_path, database_url=url))
    with pytest.raises(StoreUnavailable):
        queries.list_runs(store)
