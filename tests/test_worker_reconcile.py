"""The run's status history, the reconciler's rules and the smaller launch faults, on both backends, without a
worker process: each rule is called directly on a real store and broker (the end-to-end cases are in
tests/test_worker_faults.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from opd_core.sinks import LocalDirSink
from tinyrun import tiny_config
from worker import lifecycle, reconciler, run_end
from worker.broker import waiting_runs
from worker.models import Run
from worker.store import utcnow

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def config(**changes) -> dict:
    return tiny_config(Path("set-by-the-lab"), pipeline="grpo", **changes).to_dict()


def store_of(lab):
    return lab._current().store


class RecordingSender:
    def __init__(self, lab):
        self.sent: list[tuple[int, int, str]] = []
        self._lab = lab

    def __call__(self, run_id: int, attempt: int, queue: str) -> None:
        self.sent.append((run_id, attempt, queue))
        lab = self._lab._current()
        self._lab._send(lab, run_id, attempt, queue)


def drop_waiting_messages(settings) -> None:
    """What a Redis restart does to its queues (or a worker that took the message and died)."""
    if settings.broker_url:
        import redis

        client = redis.Redis.from_url(settings.broker_url)
        try:
            client.delete("cpu", "gpu")
        finally:
            client.close()
        return
    for message in (settings.broker_dir / "queue").glob("*.msg"):
        message.unlink()


def age(lab, run_id: int, **columns_seconds_ago: float) -> None:
    with store_of(lab).session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(**{column: utcnow() - timedelta(seconds=ago) for column, ago in columns_seconds_ago.items()})
        )


def test_the_status_history_records_every_change_with_why(lab):
    run_id = lab.launch({**config(), "out_dir": "my/own/folder"})
    assert lab.cancel(run_id) == "cancelled"
    lab.resume(run_id)
    events = lab.run_events(run_id)
    assert [event.kind for event in events] == ["queued", "cancelled", "resume"]
    assert "out_dir 'my/own/folder' is replaced by the lab's run folder runs/" in events[0].message
    assert events[2].message == "queued as attempt 2 to resume (requested) after it was cancelled"
    assert all(event.at.tzinfo is not None for event in events)
    assert events == sorted(events, key=lambda event: event.at)
    run = lab.get_run(run_id)
    assert (run.attempt, run.resumed_from_step) == (2, None)
    assert lab.run_events(999_999) == []


def test_a_queued_run_with_no_live_message_is_re_sent_once_and_its_history_says_why(lab, lab_settings):
    stranded, waiting = lab.launch(config()), lab.launch(config())
    drop_waiting_messages(lab_settings)
    lab._send(lab._current(), waiting, 1, "cpu")  # this one's message is there
    settings = dataclasses.replace(lab_settings, requeue_after_seconds=60)
    send = RecordingSender(lab)

    assert reconciler.reconcile(store_of(lab), settings, send).resent == []  # not queued long enough yet
    age(lab, stranded, queued_at=120)
    age(lab, waiting, queued_at=120)
    tick = reconciler.reconcile(store_of(lab), settings, send)
    assert tick.resent == [stranded] and send.sent == [(stranded, 1, "cpu")]
    assert waiting_runs(lab_settings) == {(stranded, 1), (waiting, 1)}
    assert reconciler.reconcile(store_of(lab), settings, send).resent == []  # its queued clock restarted
    (requeued,) = [event for event in lab.run_events(stranded) if event.kind == "requeued"]
    assert requeued.message.startswith("re-queued: no live message after 60 s")
    assert lab.get_run(stranded).status == "queued" and lab.get_run(stranded).attempt == 1


def test_a_crashed_run_resumes_by_itself_while_it_has_attempts_left(lab, lab_settings):
    store = store_of(lab)
    auto, manual = lab.launch(config(max_attempts=2)), lab.launch(config())
    for run_id in (auto, manual):
        assert lifecycle.claim(store, run_id, 1, "lost-host") is not None
        age(lab, run_id, heartbeat_at=lab_settings.stale_after_seconds + 5)
    send = RecordingSender(lab)

    tick = reconciler.reconcile(store, lab_settings, send)
    assert (tick.crashed, tick.auto_resumed, send.sent) == ([auto, manual], [auto], [(auto, 2, "cpu")])
    assert [(e.kind, re.split("[:;]", e.message)[0]) for e in lab.run_events(auto)] == [
        ("queued", "queued on cpu as attempt 1"),
        ("running", "attempt 1 started on lost-host"),
        ("crashed", "worker lost"),
        ("resume", "queued as attempt 2 to resume (auto-resume"),
    ]
    run = lab.get_run(auto)
    assert (run.status, run.attempt, run.error) == ("queued", 2, None)
    left = lab.get_run(manual)
    assert left.status == "crashed" and left.error.startswith("worker lost: no heartbeat for more than")
    # The second attempt crashes too: no third one.
    assert lifecycle.claim(store, auto, 2, "lost-again") is not None
    age(lab, auto, heartbeat_at=lab_settings.stale_after_seconds + 5)
    assert reconciler.reconcile(store, lab_settings, send).auto_resumed == []
    assert lab.get_run(auto).status == "crashed"


def test_a_run_end_kept_on_disk_is_recorded_exactly_once(lab, lab_settings):
    store = store_of(lab)
    run_id = lab.launch(config(steps=3))
    claim = lifecycle.claim(store, run_id, 1, "host-a")
    run_dir = claim.config["out_dir"]
    local = LocalDirSink(lab_settings.data_dir / run_dir)  # what the worker's sink wrote while the store was down
    for step in (1, 2, 3):
        local.log({"train/loss": 0.5 / step}, step)
    local.log_checkpoint(3, "checkpoints/step_3", {"train/loss": 0.1})
    local.close()
    end = run_end.RunEnd(
        run_id=run_id,
        attempt=1,
        run_dir=run_dir,
        status="finished",
        step=3,
        ended_at=utcnow().isoformat(),
        worker_host="host-a",
    )
    run_end.write_pending(lab_settings.data_dir, end)

    assert run_end.replay_pending_ends(store) == [run_id]
    assert run_end.replay_pending_ends(store) == []
    run = lab.get_run(run_id)
    assert (run.status, run.step, run.error) == ("finished", 3, None)
    assert lab.metrics([run_id], ["train/loss"])[run_id]["train/loss"].steps.tolist() == [1, 2, 3]
    assert [c.step for c in lab.checkpoints(run_id)] == [3]
    assert "recorded after a store outage" in lab.run_events(run_id)[-1].message
    # A pending end of an attempt that a resume replaced is dropped, not written over the newer attempt.
    stale = dataclasses.replace(end, status="failed", error="old")
    run_end.write_pending(lab_settings.data_dir, stale)
    assert run_end.replay_pending_ends(store) == [] and lab.get_run(run_id).status == "finished"
    assert not (lab_settings.data_dir / run_dir / run_end.PENDING_END).exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_launch_while_the_broker_is_down_leaves_no_run_and_says_so(tmp_path):
    from worker import api
    from worker.settings import Settings

    api.configure(Settings(data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        with pytest.raises(api.QueueUnavailable, match="broker unavailable .*nothing was launched"):
            api.launch(config())
        with pytest.raises(api.QueueUnavailable, match="nothing was launched"):
            api.launch_sweep(config(), {"seed": [0, 1]}, "down")
        assert api.list_runs() == [] and api.list_sweeps() == []
    finally:
        api.configure(None)


def opd_shell(command: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OPD_DATA_DIR": str(data_dir),
        "OPD_DATABASE_URL": "",
        "OPD_BROKER_URL": "",
        "PYTHONPATH": str(REPO_ROOT),
        "OPD": f"{sys.executable} -m worker.cli",
    }
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_opd_runs_into_head_stops_quietly_and_launch_refuses_an_out_dir_override(tmp_path):
    from worker.migrate import upgrade_to_head
    from worker.settings import Settings
    from worker.store import Store

    data_dir = tmp_path / "data"
    store = Store(Settings(data_dir=data_dir))
    upgrade_to_head(store.engine)
    with store.session() as session:  # more than a pipe buffer of listing
        for index in range(1500):
            # long names: the listing (~200 KB) must outgrow the pipe's 64 KB whatever `head` has read
            name = f"run {index} of a sweep with a long descriptive name " + "x" * 100
            lifecycle.add_run(session, store, config(), name=name, queue="cpu", total_steps=2)
    store.close()
    listed = opd_shell("$OPD runs | head -n 2", data_dir)
    assert listed.returncode == 141 and len(listed.stdout.splitlines()) == 2
    assert listed.stderr == ""

    config_file = tmp_path / "tiny.yaml"
    tiny_config(tmp_path / "ignored", pipeline="grpo").save(config_file)
    refused = opd_shell(f"$OPD launch {config_file} --set out_dir=elsewhere", data_dir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "config field 'out_dir': a launched run always writes to runs/<id>" in refused.stderr
    noted = opd_shell(f"$OPD launch {config_file}", data_dir)
    assert noted.returncode == 0
    assert f"out_dir '{tmp_path / 'ignored'}' from {config_file} is replaced by the run folder runs/" in noted.stderr


def test_an_existing_store_migrates_to_the_status_history(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from worker.migrate import alembic_config, upgrade_to_head

    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    with engine.begin() as connection:
        alembic = alembic_config()
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0001")
        connection.execute(
            text(
                "INSERT INTO runs (name, config, status, queue, attempt, resume, cancel_requested, step, total_steps, "
                "progress, created_at, tags, notes) VALUES ('old', '{}', 'queued', 'cpu', 1, 0, 0, 0, 2, 0, "
                "'2026-11-30 10:00:00', '[]', '')"
            )
        )
    upgrade_to_head(engine)
    assert "run_events" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        created_at, queued_at, resumed_from_step = connection.execute(
            text("SELECT created_at, queued_at, resumed_from_step FROM runs")
        ).one()
    assert (queued_at, resumed_from_step) == (created_at, None)
    engine.dispose()


def test_the_migrations_create_exactly_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from worker.models import Base

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
