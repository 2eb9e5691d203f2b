"""The broker as the lab sees it, without Celery: the task name, the queues, the filesystem broker's folders, and
which (run, attempt) messages are waiting in a queue (what the reconciler compares the store against).

Importing this module imports neither Celery nor kombu (the dashboard imports worker.api, which imports this).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from worker.settings import QUEUES, Settings

log = logging.getLogger(__name__)

RUN_TASK = "opd.run_training"
# The filesystem broker's transport: kombu's, with file names that sort in the order the messages were sent.
FIFO_FILESYSTEM_TRANSPORT = "worker.fifo_transport:Transport"


def queue_for(device: str) -> str:
    """`cpu` (the default) or `gpu`: a config whose device starts with `cuda` goes to the GPU workers."""
    return "gpu" if device.startswith("cuda") else "cpu"


def broker_folders(settings: Settings) -> dict[str, Path]:
    return {name: settings.broker_dir / name for name in ("queue", "control", "processed")}


def ensure_broker_folders(settings: Settings) -> None:
    """Create the filesystem broker's folders (called by whoever sends or consumes, not at import)."""
    if not settings.broker_url:
        for folder in broker_folders(settings).values():
            folder.mkdir(parents=True, exist_ok=True)


def waiting_runs(settings: Settings) -> set[tuple[int, int]]:
    """(run id, attempt) of every run message waiting in a queue, not yet taken by a worker. A message a worker
    took is not listed: the claim that follows within seconds makes the run leave `queued`. Raises when the
    broker cannot be read (the caller then cannot send either)."""
    if settings.broker_url:
        payloads = _redis_payloads(settings.broker_url)
    else:
        payloads = _filesystem_payloads(broker_folders(settings)["queue"])
    waiting = set()
    for payload in payloads:
        run = _run_of(payload)
        if run is not None:
            waiting.add(run)
    return waiting


def _filesystem_payloads(queue_folder: Path) -> list[bytes]:
    payloads = []
    for path in queue_folder.glob("*.msg"):
        try:
            payloads.append(path.read_bytes())
        except FileNotFoundError:  # taken by a worker since the listing
            pass
    return payloads


def _redis_payloads(url: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        return [item for queue in QUEUES for item in client.lrange(queue, 0, -1)]
    finally:
        client.close()


def _run_of(payload: bytes) -> tuple[int, int] | None:
    """The (run id, attempt) a kombu message of the run task carries; None for anything else."""
    try:
        message: dict[str, Any] = json.loads(payload)
        if message.get("headers", {}).get("task") != RUN_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0]), int(args[1])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("unreadable broker message ignored: %s", exc)
        return None
