"""The Celery application: which broker, which queues, and how a worker process starts.

Broker. The embedded default is Celery's filesystem broker under `<data_dir>/broker` (messages in `queue/`, a
separate `control/` folder for inspect and revoke, 0.1 s polling: 20-90 ms pickup for 0.3% idle CPU). Its
`processed/` folder is on the same filesystem, so taking a message is an atomic rename that exactly one worker
wins. `OPD_BROKER_URL=redis://...` switches to Redis. There is no result backend: a run's state lives in the
store.

Queues. `cpu` (the default) and `gpu`: a config whose device starts with `cuda` is sent to `gpu`, which GPU
workers consume with `opd worker -Q gpu`.

Acknowledgement, and why a run never starts twice. Tasks are acknowledged late (after they return) and each
worker process prefetches one message: a busy worker then holds exactly the message it is running, so a queued
run never waits in a busy worker's prefetch buffer while another worker idles. The price, with Redis, is that a
message left unacknowledged longer than `visibility_timeout` (1 h) is delivered again, to another worker,
while the first one is still training. That second delivery is harmless by construction: a message names
(run id, attempt), and a task's first act is `lifecycle.claim`, one atomic UPDATE moving that attempt from
queued to running. It matches nothing for a run that is already running, finished, crashed or requeued as a
newer attempt, so the duplicate is logged and acknowledged, and nothing else happens. Redelivery is never how a
crash is handled: virtual transports (the filesystem broker) keep unacknowledged messages in worker memory, so
a kill -9 loses them anyway. A dead worker is found by its run's stale heartbeat, and resuming is an explicit
`api.resume`. For the same reason `task_reject_on_worker_lost` stays False: a pool child that dies (kill,
out of memory) has its message acknowledged rather than re-run in a loop.

Processes. One run per pool process (`--concurrency`, default 1) and a fresh pool process per run
(`worker_max_tasks_per_child=1`), so a run's memory, CUDA context and threads are returned when it ends. The
parent imports the training code once (never touching CUDA, which must not be initialised before a fork), so
each fresh child starts in milliseconds; a forked child first drops the database connections it inherited.
"""

from __future__ import annotations

import logging
import sys

from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu import Queue

from worker.settings import QUEUES, Settings
from worker.store import Store

log = logging.getLogger(__name__)

RUN_TASK = "opd.run_training"


def broker_options(settings: Settings) -> dict:
    if settings.broker_url:
        return {"broker_url": settings.broker_url,
                "broker_transport_options": {"visibility_timeout": 3600}}
    folders = broker_folders(settings)
    return {
        "broker_url": "filesystem://localhost//",  # the host is ignored; naming it silences a kombu warning
        "broker_transport_options": {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            "processed_folder": str(folders["processed"]),
            # A rename inside the data directory is atomic; the default (move to /tmp, maybe another
            # filesystem) is a copy that two workers could both read.
            "store_processed": True,
            "polling_interval": 0.1,
        },
    }


def broker_folders(settings: Settings) -> dict:
    return {name: settings.broker_dir / name for name in ("queue", "control", "processed")}


def ensure_broker_folders(settings: Settings) -> None:
    """Create the filesystem broker's folders (called by whoever sends or consumes, not at import)."""
    if not settings.broker_url:
        for folder in broker_folders(settings).values():
            folder.mkdir(parents=True, exist_ok=True)


def make_celery(settings: Settings) -> Celery:
    app = Celery("opd", set_as_current=False)
    app.conf.update(
        **broker_options(settings),
        task_queues=[Queue(name, routing_key=name) for name in QUEUES],
        task_default_queue="cpu",
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_max_tasks_per_child=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_send_task_events=False,
    )
    return app


def queue_for(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


# ---- the worker's own app and store (one per worker process tree) ---------------------------------------------
worker_settings = Settings.from_env()
app = make_celery(worker_settings)
app.conf.include = ["worker.tasks"]
_store: Store | None = None


def worker_store() -> Store:
    global _store
    if _store is None:
        _store = Store(worker_settings)
    return _store


@worker_init.connect
def _prepare_worker(**_) -> None:
    """In the worker's main process, before the pool forks: migrate, mark dead runs, import the training code."""
    from worker import lifecycle
    from worker.migrate import upgrade_to_head

    ensure_broker_folders(worker_settings)
    store = worker_store()
    upgrade_to_head(store.engine)
    crashed = lifecycle.reap_stale(store, worker_settings.stale_after_seconds)
    if crashed:
        log.warning("runs with a stale heartbeat marked crashed: %s", crashed)
    _prune_processed_messages(worker_settings)
    _preload_training_code()


def _prune_processed_messages(settings: Settings, older_than_seconds: float = 7 * 86400) -> None:
    """The filesystem broker keeps every taken message in processed/ (that is what makes taking atomic)."""
    import time

    if settings.broker_url:
        return
    cutoff = time.time() - older_than_seconds
    for message in broker_folders(settings)["processed"].glob("*.msg"):
        try:
            if message.stat().st_mtime < cutoff:
                message.unlink()
        except FileNotFoundError:  # another worker pruned it first
            pass


def _preload_training_code() -> None:
    import opd_core.train  # noqa: F401 - imported once here, inherited by every forked child
    # torch.optim's first optimizer imports torch._dynamo lazily: about 5 s that every fresh child would pay.
    import torch._dynamo  # noqa: F401

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # is_initialized() itself never initialises CUDA
        raise RuntimeError("CUDA was initialised in the worker's parent process: forked runs would break")


@worker_process_init.connect
def _after_fork(**_) -> None:
    if _store is not None:
        _store.after_fork()
