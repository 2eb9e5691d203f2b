"""SqlSink against both databases: background flushes, the write-ahead copy that restores what a killed worker
never flushed, and a worker that lost its run to a newer attempt."""

from __future__ import annotations

import math

import pytest

from polling import wait_for
from worker import lifecycle, queries
from worker.sql_sink import SqlSink

pytestmark = pytest.mark.timeout(60)


def claimed_run(store) -> tuple[int, int]:
    run_id = lifecycle.create_run(store, {"name": "t"}, name="t", queue="cpu", total_steps=10)
    claim = lifecycle.claim(store, run_id, 1, "test")
    return run_id, claim.attempt


def sink_for(store, run_id: int, attempt: int) -> SqlSink:
    return SqlSink(store, run_id, attempt, run_dir=f"runs/{run_id}", heartbeat_seconds=0.2, cancel_poll_seconds=0.0)


def steps(store, run_id: int, key: str = "train/loss") -> list[int]:
    series = queries.metrics(store, [run_id], [key]).get(run_id, {}).get(key)
    return [] if series is None else series.steps.tolist()


def without_background_flushes(sink: SqlSink) -> SqlSink:
    sink._stop.set()
    sink._thread.join()
    return sink


def test_metrics_and_progress_reach_the_database_while_the_run_goes_on(store):
    run_id, attempt = claimed_run(store)
    sink = sink_for(store, run_id, attempt)
    sink.log({"train/loss": 0.5, "train/kl": math.inf}, 1)
    sink.progress(1, 10)
    # No flush is asked for: the background thread (every 0.2 s here) must bring both to the database.
    wait_for(lambda: steps(store, run_id) and queries.get_run(store, run_id).progress > 0, 10, "a background flush")
    assert steps(store, run_id) == [1]
    assert queries.latest_metrics(store, [run_id], ["train/kl"])[run_id]["train/kl"] == (1, math.inf)
    assert queries.get_run(store, run_id).progress == pytest.approx(0.1)
    sink.log_checkpoint(1, "checkpoints/step_1", {"seen_success": math.nan})
    assert queries.checkpoints(store, run_id)[0].path == f"runs/{run_id}/checkpoints/step_1"
    sink.close()
    sink.close()  # idempotent: opd_core and the task may both close it


def test_resume_restores_rows_a_killed_worker_never_flushed_and_forgets_later_ones(store):
    run_id, attempt = claimed_run(store)
    first = without_background_flushes(sink_for(store, run_id, attempt))
    for step in (1, 2, 3):
        first.log({"train/loss": float(step)}, step)
    first.flush()
    for step in (4, 5):
        first.log({"train/loss": float(step)}, step)
    # Killed between writing checkpoint 5 to disk and recording it: only the run folder's copy knows 4, 5 and
    # the checkpoint; 6 was logged after it.
    first._local.log_checkpoint(5, "checkpoints/step_5", {"seen_success": 0.5})
    first.log({"train/loss": 6.0}, 6)
    first._local.close()
    assert steps(store, run_id) == [1, 2, 3]

    lifecycle.finish(store, run_id, attempt, "failed", error="killed")
    new_attempt, _ = lifecycle.requeue_for_resume(store, run_id, 30)
    lifecycle.claim(store, run_id, new_attempt, "test")
    second = sink_for(store, run_id, new_attempt)
    second.resume_from(5)  # what opd_core.train does when it resumes from checkpoint 5

    assert steps(store, run_id) == [1, 2, 3, 4, 5]
    assert [(c.step, c.summary) for c in queries.checkpoints(store, run_id)] == [(5, {"seen_success": 0.5})]
    second.log({"train/loss": 6.5}, 6)
    second.close()
    series = queries.metrics(store, [run_id], ["train/loss"])[run_id]["train/loss"]
    assert series.steps.tolist() == [1, 2, 3, 4, 5, 6] and series.values[-1] == 6.5


def test_a_worker_that_lost_its_run_stops_and_writes_nothing(store):
    run_id, attempt = claimed_run(store)
    sink = sink_for(store, run_id, attempt)
    assert sink.stop_requested() is False
    lifecycle.finish(store, run_id, attempt, "failed")
    lifecycle.requeue_for_resume(store, run_id, 30)  # someone resumed it: attempt 2 now owns the run

    sink.log({"train/loss": 1.0}, 1)
    sink.flush()
    assert sink.owned is False and sink.stop_requested() is True
    sink.close()
    assert steps(store, run_id) == []
    assert queries.get_run(store, run_id).status == "queued"


def test_the_cancel_flag_reaches_stop_requested(store):
    run_id, attempt = claimed_run(store)
    sink = sink_for(store, run_id, attempt)
    assert sink.stop_requested() is False
    lifecycle.request_cancel(store, run_id)
    assert sink.stop_requested() is True
    sink.close()
