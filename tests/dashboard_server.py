"""The dashboard as a researcher starts it (`python -m app`, bound to 127.0.0.1) on a free port, for the browser
tests and bench/bench_dashboard_browser.py: started, polled until healthy, stopped, its output kept in a log file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DashboardServer:
    url: str
    """Where the dashboard answers, e.g. http://127.0.0.1:54321."""
    process: subprocess.Popen
    """The `python -m app` process (the leader of its own process group)."""


@contextmanager
def running_dashboard(env: dict[str, str], log_path: Path, timeout: float = 90.0) -> Iterator[DashboardServer]:
    """Start the dashboard with `env`, wait until /_stcore/health says ok, yield it, then stop its process group.

    Its stdout and stderr go to `log_path`, which stays after the stop; the log is in the error when it exits or
    is not healthy within `timeout` seconds."""
    port = _free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "--server.port", str(port), "--server.fileWatcherType", "none"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = DashboardServer(url=f"http://127.0.0.1:{port}", process=process)
        try:
            _wait_healthy(server, log_path, timeout)
            yield server
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(server: DashboardServer, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"streamlit not healthy after {timeout} s:\n{log_path.read_text()}")
