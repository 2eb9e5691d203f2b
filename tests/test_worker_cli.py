"""The `opd` lab commands as a user types them (no worker needed: launching only queues)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrun import tiny_config

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def opd(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OPD_DATA_DIR": str(data_dir),
        "OPD_DATABASE_URL": "",
        "OPD_BROKER_URL": "",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=100
    )


def test_launch_runs_cancel_and_a_refused_config(tmp_path):
    data_dir = tmp_path / "data"
    config_file = tmp_path / "tiny.yaml"
    tiny_config(tmp_path / "ignored", pipeline="grpo").save(config_file)

    launched = opd("launch", str(config_file), "--set", "seed=3", "--tag", "cli", data_dir=data_dir)
    assert launched.returncode == 0, launched.stderr
    run_id = int(launched.stdout.strip())

    listed = opd("runs", "--json", data_dir=data_dir)
    (run,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (run["id"], run["status"], run["tags"]) == (run_id, "queued", ["cli"])
    assert opd("cancel", str(run_id), data_dir=data_dir).stdout.strip() == "cancelled"

    refused = opd("launch", str(config_file), "--set", "steps=0", data_dir=data_dir)
    assert refused.returncode == 2
    assert "config field 'steps'" in refused.stderr and "Traceback" not in refused.stderr
    not_resumable = opd("resume", "999", data_dir=data_dir)
    assert not_resumable.returncode == 2 and "no run with id 999" in not_resumable.stderr
