"""scripts/dashboard.sh refuses a port that is taken (or not a port) before anything starts, with one line that
names the port and how to pick another."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_dashboard_script(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/dashboard.sh"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize("variable", ["PORT", "OPD_PORT"])
def test_a_taken_port_is_refused_with_one_clear_line_before_anything_starts(variable):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_dashboard_script(**{variable: str(port)})
    assert result.returncode != 0
    assert result.stdout == ""  # setup.sh and honcho never ran
    (line,) = result.stderr.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert f"PORT={port + 1} bash scripts/dashboard.sh" in line


@pytest.mark.timeout(90)
def test_a_port_that_is_no_number_is_refused():
    result = run_dashboard_script(PORT="85o1")
    assert result.returncode != 0 and result.stdout == ""
    assert "port '85o1' is not a port number" in result.stderr


@pytest.mark.timeout(60)
def test_under_honcho_the_dashboard_gets_the_chosen_port_not_the_one_honcho_sets(tmp_path):
    honcho = shutil.which("honcho") or str(Path(sys.executable).parent / "honcho")
    web = next(line for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert "python -m app " in web, web  # the entry point with the dashboard's settings (app/__main__.py)
    (tmp_path / "Procfile").write_text(web.replace("python -m app", "echo python -m app", 1) + "\n")
    result = subprocess.run(
        [honcho, "-f", str(tmp_path / "Procfile"), "start", "web"],
        cwd=REPO_ROOT,
        env={**os.environ, "OPD_PORT": "8600"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    ports = [line.rstrip().endswith("--server.port 8600") for line in result.stdout.splitlines()]
    assert any(ports), result.stdout + result.stderr
