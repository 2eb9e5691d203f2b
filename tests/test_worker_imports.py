"""Importing the lab has no side effects: no Celery app is built, Celery is not even imported by what the
dashboard imports, and no OPD_* environment variable is read (settings are read on first use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Replaces os.environ with a mapping that records every key read, then imports the modules named in argv.
PROBE = r"""
import json, os, sys

class RecordingEnviron(type(os.environ)):
    read = []
    def __getitem__(self, key):
        RecordingEnviron.read.append(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        RecordingEnviron.read.append(key)
        return super().__contains__(key)

recording = RecordingEnviron(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                             os.environ.encodevalue, os.environ.decodevalue)
os.environ = recording
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
apps = 0
if "celery" in sys.modules:
    from celery._state import _apps
    apps = len(list(_apps))
print(json.dumps({"celery": "celery" in sys.modules, "kombu": "kombu" in sys.modules, "apps": apps,
                  "opd_env_read": sorted({key for key in RecordingEnviron.read if key.startswith("OPD_")})}))
"""

DASHBOARD_SIDE = [
    "worker.api",
    "worker.queries",
    "worker.lifecycle",
    "worker.sql_sink",
    "worker.tasks",
    "worker.reconciler",
    "worker.run_end",
    "worker.broker",
    "worker.settings",
    "worker.store",
    "worker.models",
    "worker.migrate",
    "worker.metric_rows",
    "worker.cli",
    "app.views.runs",
]


def probe(*modules: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "OPD_DATA_DIR": "/nonexistent/must-not-be-read",
        "OPD_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(150)
def test_what_the_dashboard_imports_leaves_celery_out_and_reads_no_setting():
    seen = probe(*DASHBOARD_SIDE)
    assert (seen["celery"], seen["kombu"], seen["opd_env_read"]) == (False, False, [])


@pytest.mark.timeout(150)
def test_importing_the_celery_module_builds_no_app_and_reads_no_setting():
    seen = probe("worker.celery_app", "worker.fifo_transport")
    assert seen["celery"] and (seen["apps"], seen["opd_env_read"]) == (0, [])
