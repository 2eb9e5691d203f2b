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
a kill -9 loses them anyway. A dead worker is found by its run's stale heartbeat; resuming is an explicit
`api.resume`, or automatic while the run's `max_attempts` allows (worker.reconciler, which also re-sends a
queued run whose message is lost). For the same reason `task_reject_on_worker_lost` stays False: a pool child
that dies (kill, out of memory) has its message acknowledged rather than re-run in a loop.

Order. Queued runs start first in, first out: Redis lists are FIFO, and the filesystem broker uses
worker.fifo_transport, whose message names sort in sending order (kombu's own names do not within a millisecond).

Processes. One run per pool process (`--concurrency`, default: the machine's cores) and a fresh pool process per
run (`worker_max_tasks_per_child=1`), so a run's memory, CUDA context and threads are returned when it ends; each
run uses one torch thread, so that N runs share N cores instead of oversubscribing them. The parent imports the
training code once (never touching CUDA, which must not be initialised before a fork), so each fresh child starts
in milliseconds; a forked child first drops the database connections it inherited.

Nothing happens at import: `make_celery(settings)` builds a client app for whoever sends (worker.api, on first
use), and `build_worker_app(settings)` the worker's own app (the `opd worker` entry point), which registers the
task and the start-up hooks, among them the reconciler (worker.reconciler) on its timer.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from dataclasses import dataclass, field

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown
from kombu import Queue

from worker.broker import FIFO_FILESYSTEM_TRANSPORT, RUN_TASK, broker_folders, ensure_broker_folders, queue_for
from worker.settings import QUEUES, Settings
from worker.store import Store

__all__ = ["RUN_TASK", "broker_options", "build_worker_app", "ensure_broker_folders", "make_celery", "queue_for"]

log = logging.getLogger(__name__)


def broker_options(settings: Settings) -> dict:
    if settings.broker_url:
        return {"broker_url": settings.broker_url, "broker_transport_options": {"visibility_timeout": 3600}}
    folders = broker_folders(settings)
    return {
        "broker_url": "filesystem://localhost//",  # the host is ignored; naming it silences a kombu warning
        "broker_transport": FIFO_FILESYSTEM_TRANSPORT,
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


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings, without tasks: what a sender needs (send_task by name)."""
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


# ---- the worker's own app (one per worker process tree) -------------------------------------------------------
@dataclass
class WorkerContext:
    """What the worker's processes share: its settings, its app, its store (opened lazily, once per process)."""

    settings: Settings
    app: Celery
    _store: Store | None = None
    _reconciler_stop: threading.Event = field(default_factory=threading.Event)

    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings)
        return self._store


_context: WorkerContext | None = None


def build_worker_app(settings: Settings) -> Celery:
    """The worker's app: the run task registered, start-up hooks connected. Called once by `opd worker`."""
    global _context
    app = make_celery(settings)
    app.task(name=RUN_TASK, bind=True, acks_late=True, ignore_result=True)(_run_training)
    _context = WorkerContext(settings=settings, app=app)
    worker_init.connect(_prepare_worker, weak=False, dispatch_uid="opd.prepare_worker")
    worker_ready.connect(_start_reconciler, weak=False, dispatch_uid="opd.start_reconciler")
    worker_shutdown.connect(_stop_reconciler, weak=False, dispatch_uid="opd.stop_reconciler")
    worker_process_init.connect(_after_fork, weak=False, dispatch_uid="opd.after_fork")
    return app


def worker_context() -> WorkerContext:
    if _context is None:
        raise RuntimeError("the worker app was not built: start workers with `opd worker`")
    return _context


def _run_training(task, run_id: int, attempt: int) -> dict:
    from worker.tasks import execute_run

    context = worker_context()
    host = task.request.hostname or socket.gethostname()
    return execute_run(context.store(), context.settings, run_id, attempt, host)


def _prepare_worker(**_) -> None:
    """In the worker's main process, before the pool forks: migrate, import the training code."""
    from worker.migrate import upgrade_to_head

    context = worker_context()
    ensure_broker_folders(context.settings)
    upgrade_to_head(context.store().engine)
    _prune_processed_messages(context.settings)
    _preload_training_code()


def _start_reconciler(**_) -> None:
    """Once the worker consumes: reconcile now (stale runs, stranded messages, unrecorded ends), then on a timer."""
    from worker.reconciler import run_forever

    context = worker_context()
    # Its own engine: pool processes forked while this thread works must not inherit a connection in use.
    store = Store(context.settings)
    thread = threading.Thread(
        target=run_forever,
        name="opd-reconciler",
        daemon=True,
        args=(store, context.settings, context.app, context._reconciler_stop),
    )
    thread.start()


def _stop_reconciler(**_) -> None:
    if _context is not None:
        _context._reconciler_stop.set()


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
    # torch.optim's first optimizer imports torch._dynamo lazily: about 5 s that every fresh child would pay.
    import torch._dynamo  # noqa: F401

    import opd_core.train  # noqa: F401 - imported once here, inherited by every forked child

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # is_initialized() itself never initialises CUDA
        raise RuntimeError("CUDA was initialised in the worker's parent process: forked runs would break")


def _after_fork(**_) -> None:
    """In each fresh pool process (one per run): its own database connections, one torch thread."""
    if _context is not None and _context._store is not None:
        _context._store.after_fork()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
