"""Real `opd worker` processes with the options the fault and concurrency tests need (concurrency, extra
environment, no OMP_NUM_THREADS pinning), built on conftest's WorkerProcess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import REPO_ROOT, WorkerProcess


class LabWorker(WorkerProcess):
    def __init__(self, settings, log_path: Path, *, concurrency: int | None = 1, queues: str = "cpu", name: str = "w"):
        env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        for pinned in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the worker itself must give each run one thread
            env.pop(pinned, None)
        self.log_path = log_path
        self._log = open(log_path, "w")
        command = [
            sys.executable,
            "-m",
            "worker.cli",
            "worker",
            "-Q",
            queues,
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
        ]
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )


class LabWorkers:
    """Starts LabWorkers for one test, kills them all at the end and prints their logs when it failed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.workers: list[LabWorker] = []

    def start(self, settings, *, wait: bool = True, **options) -> LabWorker:
        worker = LabWorker(
            settings, self.folder / f"worker-{len(self.workers)}.log", name=f"w{len(self.workers)}", **options
        )
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop_all(self, failed: bool) -> None:
        for worker in self.workers:
            worker.stop()
        if failed:
            for worker in self.workers:
                print(f"----- {worker.log_path.name} -----\n{worker.log_text()[-8000:]}")
