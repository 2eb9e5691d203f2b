"""Faults that used to lose a run or hide why (issue 13), end to end: real `opd worker` processes, real
brokers and databases, tiny runs. A test that breaks a service breaks a private one (its own redis-server, a TCP
proxy in front of PostgreSQL), never the shared servers.

Timing knobs on top of tests/conftest.py's: the reconciler ticks every 0.5 s and re-sends a run queued for 2 s
with no message waiting.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import _empty_postgres, _fast_settings, servers_required
from fault_services import PrivateRedis, TcpProxy
from lab_runs import SLOW_STEPS, run_config, stored_steps, wait_until_ended
from lab_workers import LabWorkers
from opd_core.sinks import read_metrics
from polling import wait_for

TRAIN_KEYS = ("train/success", "time/step_seconds")


def config(**changes) -> dict:
    """A tiny GRPO run without evaluations: the faults hit training steps, which the store must hold once each."""
    return run_config(**{"eval_every": 0, "videos_per_eval": 0, **changes})


def fault_settings(data_dir: Path, **changes):
    return dataclasses.replace(_fast_settings(data_dir), reconcile_seconds=0.5, requeue_after_seconds=2.0, **changes)


@pytest.fixture
def workers(tmp_path, request):
    started = LabWorkers(tmp_path)
    yield started
    report = getattr(request.node, "rep_call", None)
    started.stop_all(failed=report is not None and report.failed)


@pytest.fixture
def configure():
    from worker import api

    def use(settings):
        api.configure(settings)
        return api

    yield use
    api.configure(None)


@pytest.fixture
def private_redis(tmp_path):
    try:
        redis = PrivateRedis(tmp_path)
    except FileNotFoundError as exc:
        if servers_required():
            pytest.fail(f"{exc}, and OPD_REQUIRE_SERVERS=1 makes the server-backed tests mandatory")
        pytest.skip(str(exc))
    yield redis
    redis.stop()


def assert_every_step_once(lab, run_id: int, total: int) -> None:
    for key in TRAIN_KEYS:
        assert stored_steps(lab, run_id, key) == list(range(1, total + 1)), key
    local = [
        row["step"] for row in read_metrics(lab.artifact_path(lab.get_run(run_id).out_dir)) if "train/success" in row
    ]
    assert local == list(range(1, total + 1))


def logged_steps(run_folder: Path) -> int:
    """The newest step in the run folder's metrics.jsonl (written at every step, unlike the store)."""
    return max((row["step"] for row in read_metrics(run_folder)), default=-1)


def claims(worker_log: str, run_id: int) -> list[str]:
    return re.findall(rf"run {run_id} attempt (\d+): claimed", worker_log)


@pytest.mark.servers
@pytest.mark.timeout(300)
def test_a_run_queued_while_redis_restarts_is_re_sent_and_finishes_every_step_once(
    tmp_path, private_redis, configure, workers
):
    settings = fault_settings(tmp_path / "data", broker_url=private_redis.url)
    lab = configure(settings)
    worker = workers.start(settings)
    busy = lab.launch(config(steps=30, **SLOW_STEPS))  # keeps the worker busy while the other one waits
    waiting = lab.launch(config(steps=3))
    wait_for(lambda: lab.get_run(busy).status == "running", 120, "the first run to start")

    private_redis.restart()  # keeps nothing on disk: the waiting run's message is gone
    assert lab.get_run(busy).status == "running", "the first run ended before Redis restarted: make it longer"

    first, second = wait_until_ended(lab, busy, 180), wait_until_ended(lab, waiting, 180)
    assert (first.status, second.status) == ("finished", "finished")
    assert_every_step_once(lab, waiting, 3)
    assert claims(worker.log_text(), waiting) == ["1"]
    requeued = [event for event in lab.run_events(waiting) if event.kind == "requeued"]
    assert requeued and requeued[0].message.startswith("re-queued: no live message after 2 s")


@pytest.mark.timeout(300)
def test_a_worker_killed_between_taking_a_message_and_claiming_its_run(tmp_path, configure, workers):
    settings = fault_settings(tmp_path / "data")
    lab = configure(settings)
    run_id = lab.launch(config(steps=3))
    queue, processed = settings.broker_dir / "queue", settings.broker_dir / "processed"
    # Hold SQLite's write lock so that the claim waits; the worker takes the message and is killed meanwhile.
    blocker = sqlite3.connect(settings.data_dir / "opd.sqlite", timeout=30, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        first = workers.start(settings)
        wait_for(
            lambda: not list(queue.glob("*.msg")) and list(processed.glob("*.msg")),
            60,
            "the worker to take the message",
        )
        first.kill_hard()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert lab.get_run(run_id).status == "queued" and claims(first.log_text(), run_id) == []

    second = workers.start(settings)
    run = wait_until_ended(lab, run_id, 180)
    assert (run.status, run.attempt) == ("finished", 1)
    assert_every_step_once(lab, run_id, 3)
    assert claims(second.log_text(), run_id) == ["1"]
    assert [event.kind for event in lab.run_events(run_id)].count("requeued") >= 1


@pytest.mark.servers
@pytest.mark.timeout(300)
@pytest.mark.parametrize("end_deadline", [60.0, 1.0], ids=["retried-until-back", "kept-on-disk-and-replayed"])
def test_postgresql_unreachable_across_a_runs_end_still_ends_it_finished_every_step_once(
    tmp_path, postgres_database_url, configure, workers, end_deadline
):
    _empty_postgres(postgres_database_url)
    server = make_url(postgres_database_url)
    proxy = TcpProxy(server.port or 5432, server.host or "127.0.0.1")
    try:
        proxied = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = fault_settings(tmp_path / "data", database_url=proxied, end_deadline_seconds=end_deadline)
        lab = configure(settings)
        worker = workers.start(settings)
        total = 16
        run_id = lab.launch(config(steps=total, save_every=8, **SLOW_STEPS))
        run_folder = lab.artifact_path(lab.get_run(run_id).out_dir)
        wait_for(lambda: logged_steps(run_folder) >= 2, 120, "step 2 in the run folder")

        proxy.cut()  # from mid-run until after the run's end
        cut_at = time.monotonic()
        assert logged_steps(run_folder) < total, "the run ended before the outage began: make it longer"
        if end_deadline < 10:  # the worker gives up on the store and keeps the end in the run folder
            wait_for(lambda: (run_folder / "end.pending.json").is_file(), 120, "the end kept on disk")
        else:  # the worker keeps retrying the end
            wait_for(
                lambda: "final flush failed, retrying until the deadline" in worker.log_text(),
                120,
                "the final flush to retry",
            )
        time.sleep(max(0.0, 3.5 - (time.monotonic() - cut_at)))  # the outage lasts longer than 3 s
        proxy.restore()

        # Until the worker's next try gets through, the run's heartbeat is stale: it reads as crashed meanwhile.
        run = wait_for(
            lambda: (run := lab.get_run(run_id)).status == "finished" and run, 120, "the run to be recorded finished"
        )
        assert (run.status, run.step, run.error) == ("finished", total, None)
        assert_every_step_once(lab, run_id, total)
        assert [c.step for c in lab.checkpoints(run_id)] == [0, 8, 16]
        assert not (run_folder / "end.pending.json").exists()
        if end_deadline < 10:
            assert "recorded after a store outage" in lab.run_events(run_id)[-1].message
    finally:
        proxy.close()


@pytest.mark.timeout(300)
def test_a_killed_run_resumes_by_itself_from_its_last_checkpoint(tmp_path, configure, workers):
    settings = fault_settings(tmp_path / "data")
    lab = configure(settings)
    first = workers.start(settings)
    total = 12
    run_id = lab.launch(config(steps=total, save_every=3, max_attempts=2, **SLOW_STEPS))
    wait_for(lambda: any(c.step >= 3 for c in lab.checkpoints(run_id)), 120, "a checkpoint at step 3")
    first.kill_hard()
    workers.start(settings)

    # Between the kill and the second attempt the run reads as crashed: wait for the second attempt's end.
    run = wait_for(
        lambda: (run := lab.get_run(run_id)).attempt == 2 and run.status not in ("queued", "running") and run,
        200,
        "the second attempt to end",
    )
    assert (run.status, run.attempt, run.error) == ("finished", 2, None)
    assert run.resumed_from_step is not None and run.resumed_from_step >= 3
    assert_every_step_once(lab, run_id, total)
    history = [(event.kind, event.message) for event in lab.run_events(run_id)]
    kinds = [kind for kind, _ in history]
    assert kinds[:2] == ["queued", "running"] and kinds[-1] == "finished"
    assert kinds[2:] == ["crashed", "resume", "running", "resumed", "finished"]
    assert "auto-resume: attempt 2 of 2" in history[3][1]
    assert history[5][1] == f"attempt 2 resumed from the checkpoint of step {run.resumed_from_step}"
