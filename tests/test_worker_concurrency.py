"""The embedded default runs as many runs at once as it has cores, each in one torch thread, and starts queued
runs in the order they were queued. Real `opd worker` processes on SQLite + the filesystem broker."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lab_workers import LabWorkers
from polling import wait_for
from tinyrun import tiny_config

QUICK = dict(pipeline="grpo", eval_every=0, videos_per_eval=0, eval_init_states=0, save_every=0)


def config(**changes) -> dict:
    return tiny_config(Path("set-by-the-lab"), **{**QUICK, **changes}).to_dict()


@pytest.fixture
def workers(tmp_path, request):
    started = LabWorkers(tmp_path)
    yield started
    report = getattr(request.node, "rep_call", None)
    started.stop_all(failed=report is not None and report.failed)


def ended(lab, run_ids):
    runs = [lab.get_run(run_id) for run_id in run_ids]
    return all(run.status not in ("queued", "running") for run in runs) and runs


@pytest.mark.timeout(240)
def test_one_process_starts_queued_runs_first_in_first_out_with_one_torch_thread(lab, lab_settings, workers):
    if lab_settings.broker_url:
        pytest.skip("Redis lists are first in, first out by construction; this is the filesystem broker's test")
    # A sweep sends its messages in a loop, several within one millisecond: kombu's own file names sorted
    # those by a random uuid.
    _, sweep_runs = lab.launch_sweep(config(steps=1), {"seed": [0, 1, 2]}, "fifo")
    single = lab.launch(config(steps=1))
    queued = [*sweep_runs, single]
    worker = workers.start(lab_settings, concurrency=1)
    runs = wait_for(lambda: ended(lab, queued), 200, "the four runs to end")

    assert [run.status for run in runs] == ["finished"] * 4
    claimed = [int(m) for m in re.findall(r"run (\d+) attempt 1: claimed", worker.log_text())]
    assert claimed == queued
    starts = [run.started_at for run in runs]
    assert starts == sorted(starts)
    assert worker.log_text().count("torch threads=1") == 4


@pytest.mark.timeout(240)
def test_concurrency_two_runs_two_runs_at_once(lab, lab_settings, workers):
    slow = dict(steps=6, max_episode_steps=16, group_size=4)  # a few seconds each, far longer than a claim
    first, second = lab.launch(config(**slow)), lab.launch(config(**slow))
    workers.start(lab_settings, concurrency=2)
    a, b = wait_for(lambda: ended(lab, [first, second]), 200, "both runs to end")

    assert (a.status, b.status) == ("finished", "finished")
    assert a.started_at < b.finished_at and b.started_at < a.finished_at, "the two runs overlapped"
    assert a.worker_host == b.worker_host


def test_a_worker_runs_as_many_runs_at_once_as_the_machine_has_cores(monkeypatch):
    from worker import celery_app, cli

    started = {}

    class FakeApp:
        def worker_main(self, argv):
            started["argv"] = argv

    monkeypatch.setattr(celery_app, "build_worker_app", lambda settings: FakeApp())
    assert cli.main(["worker"]) == 0
    argv = started["argv"]
    assert argv[argv.index("--concurrency") + 1] == str(os.cpu_count())
    assert cli.main(["worker", "-c", "3"]) == 0
    assert started["argv"][started["argv"].index("--concurrency") + 1] == "3"
    with pytest.raises(SystemExit):
        cli.main(["worker", "-c", "0"])


def test_the_filesystem_broker_hands_out_messages_in_sending_order(tmp_path):
    from worker.broker import RUN_TASK, broker_folders, ensure_broker_folders
    from worker.celery_app import make_celery
    from worker.settings import Settings

    settings = Settings(data_dir=tmp_path)
    ensure_broker_folders(settings)
    app = make_celery(settings)
    for run_id in range(60):  # dozens per millisecond: kombu's own names order these by a random uuid
        app.send_task(RUN_TASK, args=[run_id, 1], queue="cpu", routing_key="cpu")
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        taken = [channel._get("cpu")["headers"]["argsrepr"] for _ in range(60)]
    assert taken == [f"[{run_id}, 1]" for run_id in range(60)]
    assert not list(broker_folders(settings)["queue"].iterdir())
