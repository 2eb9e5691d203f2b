"""A 2-rank run through a real `opd worker` (both backends): launched, watched, cancelled at one step on every
rank; one rank killed with SIGKILL ends the run crashed with no rank left, and resume continues with every metric
step once."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from lab_runs import SLOW_STEPS, run_config, stored_steps, wait_until_ended
from opd_core.sinks import read_metrics
from polling import wait_for


def ranks_of(worker) -> list[psutil.Process]:
    """The worker's rank processes (spawned by torch.multiprocessing; the resource tracker is not a rank)."""
    try:
        children = psutil.Process(worker.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def two_rank_config(**changes) -> dict:
    return run_config(**{**SLOW_STEPS, "nproc_per_node": 2, **changes})


@pytest.mark.timeout(240)
def test_a_two_rank_run_is_watched_and_cancelled_at_one_step_on_every_rank(lab, lab_settings, start_worker):
    worker = start_worker(lab_settings)
    run_id = lab.launch(two_rank_config(steps=500, save_every=100))
    out_dir = wait_for(
        lambda: (run := lab.get_run(run_id)).step >= 2 and lab.artifact_path(run.out_dir), 150, "two steps"
    )
    assert len(ranks_of(worker)) == 2
    run = lab.get_run(run_id)
    assert run.status == "running" and 0 < run.progress < 1
    assert lab.cancel(run_id) == "running"
    run = wait_until_ended(lab, run_id, 60)
    assert run.status == "cancelled" and run.error is None
    assert [c.step for c in lab.checkpoints(run_id)][-1] == run.step
    assert stored_steps(lab, run_id, "train/success") == list(range(1, run.step + 1))
    assert [row["step"] for row in read_metrics(out_dir) if "train/success" in row] == list(range(1, run.step + 1))
    wait_for(lambda: not ranks_of(worker), 30, "the ranks to exit")


@pytest.mark.timeout(300)
def test_a_killed_rank_crashes_the_run_leaves_no_rank_and_resume_finishes_every_step_once(
    lab, lab_settings, start_worker
):
    total = 9
    worker = start_worker(lab_settings)
    run_id = lab.launch(two_rank_config(steps=total, save_every=3))
    wait_for(lambda: any(c.step >= 3 for c in lab.checkpoints(run_id)), 150, "a checkpoint at step 3")
    ranks = ranks_of(worker)
    assert len(ranks) == 2
    os.kill(ranks[-1].pid, signal.SIGKILL)
    killed_at = time.time()
    crashed = wait_for(lambda: (run := lab.get_run(run_id)).status == "crashed" and run, 60, "the run to crash")
    assert time.time() - killed_at < 60
    assert "killed by SIGKILL" in crashed.error and crashed.step < total
    wait_for(lambda: not ranks_of(worker), 30, "no rank left")
    assert all(not psutil.pid_exists(rank.pid) or rank.status() == psutil.STATUS_ZOMBIE for rank in ranks)

    lab.resume(run_id)
    run = wait_until_ended(lab, run_id, 200)
    assert (run.status, run.attempt, run.step) == ("finished", 2, total)
    for key in ("train/success", "time/env_steps"):
        assert stored_steps(lab, run_id, key) == list(range(1, total + 1)), key
    local_rows = read_metrics(lab.artifact_path(run.out_dir))
    assert [row["step"] for row in local_rows if "train/success" in row] == list(range(1, total + 1))


@pytest.mark.timeout(240)
def test_ranks_die_with_the_process_that_launched_them_and_the_run_shows_crashed(lab, lab_settings, start_worker):
    """SIGKILL of the pool process that runs the task (the ranks' parent; the worker's main process lives on):
    the kernel ends every rank (PR_SET_PDEATHSIG) and the stopped heartbeat shows the run crashed."""
    worker = start_worker(lab_settings)
    run_id = lab.launch(two_rank_config(steps=500, save_every=100))
    wait_for(lambda: lab.get_run(run_id).step >= 1, 150, "a step")
    ranks = ranks_of(worker)
    assert len(ranks) == 2
    parent = ranks[0].parent()
    assert parent.pid != worker.process.pid and all(rank.ppid() == parent.pid for rank in ranks)
    parent.kill()
    wait_for(
        lambda: not any(psutil.pid_exists(r.pid) and r.status() != psutil.STATUS_ZOMBIE for r in ranks),
        30,
        "the ranks to die with their parent",
    )
    crashed = wait_for(lambda: (run := lab.get_run(run_id)).status == "crashed" and run, 60, "the run to crash")
    assert crashed.step < 500
