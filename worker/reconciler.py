"""The reconciler: what a worker does besides running runs, once at start and then every `reconcile_seconds`.

Each tick, in this order (an earlier step's writes are what the later ones read):
1. run ends that a store outage kept on disk are recorded (worker.run_end), so a run that finished during the
   outage ends `finished`, not crashed, before anything below looks at it;
2. runs whose heartbeat went stale are marked crashed, with the reason;
3. a crashed run whose config allows more attempts (`max_attempts`) is resumed from its newest checkpoint;
4. a run queued for longer than `requeue_after_seconds` with no message waiting for it in the broker (Redis
   restarted and lost it; a worker took it and died before claiming it) is sent again. The message names the
   attempt, and claiming is one conditional UPDATE, so a duplicate that does turn up is refused.
Every step is also safe with several workers reconciling the same store at once. A store or broker that does
not answer skips the tick's remaining steps (logged once); the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from worker import lifecycle
from worker.broker import RUN_TASK, ensure_broker_folders, waiting_runs
from worker.run_end import replay_pending_ends
from worker.settings import Settings
from worker.store import Store

log = logging.getLogger(__name__)

Send = Callable[[int, int, str], None]
"""send(run_id, attempt, queue): publish the run's message."""


@dataclass
class Tick:
    """What one reconciliation did (logged; returned for tests and tools)."""

    recorded_ends: list[int] = field(default_factory=list)
    crashed: list[int] = field(default_factory=list)
    auto_resumed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)


def reconcile(store: Store, settings: Settings, send: Send) -> Tick:
    tick = Tick()
    tick.recorded_ends = replay_pending_ends(store)
    tick.crashed = lifecycle.reap_stale(store, settings.stale_after_seconds)
    for run_id, attempt, max_attempts in lifecycle.crashed_with_attempts_left(store):
        why = f"auto-resume: attempt {attempt + 1} of {max_attempts}"
        requeued = lifecycle.requeue_for_resume(
            store, run_id, settings.stale_after_seconds, why=why, only_attempt=attempt
        )
        if requeued is not None:
            send(run_id, *requeued)
            tick.auto_resumed.append(run_id)
    candidates = lifecycle.stranded_candidates(store, settings.requeue_after_seconds)
    if candidates:
        waiting = waiting_runs(settings)
        for run_id, attempt, queue in candidates:
            if (run_id, attempt) in waiting:
                continue
            reason = (
                f"re-queued: no live message after {settings.requeue_after_seconds:g} s "
                f"(the broker lost it, or a worker took it and died before starting the run)"
            )
            if lifecycle.mark_resent(store, run_id, attempt, reason, settings.requeue_after_seconds):
                send(run_id, attempt, queue)
                tick.resent.append(run_id)
    return tick


def celery_sender(app) -> Send:
    def send(run_id: int, attempt: int, queue: str) -> None:
        app.send_task(RUN_TASK, args=[run_id, attempt], queue=queue, routing_key=queue)

    return send


def run_forever(store: Store, settings: Settings, app, stop: threading.Event) -> None:
    """The worker's reconciler thread: a tick now, then one every `reconcile_seconds` until `stop` is set."""
    ensure_broker_folders(settings)
    send = celery_sender(app)
    failing = False
    while True:
        try:
            tick = reconcile(store, settings, send)
            if failing:
                log.warning("reconciler: the store and broker answer again")
            failing = False
            for what, run_ids in (
                ("end recorded after a store outage", tick.recorded_ends),
                ("marked crashed (stale heartbeat)", tick.crashed),
                ("auto-resumed", tick.auto_resumed),
                ("re-sent (no live message)", tick.resent),
            ):
                if run_ids:
                    log.warning("reconciler: runs %s: %s", ", ".join(map(str, run_ids)), what)
        except Exception as exc:  # noqa: BLE001 - an outage must not end the thread; the next tick retries
            if not failing:
                log.warning("reconciler: tick failed, retrying every %.0f s: %s", settings.reconcile_seconds, exc)
            failing = True
        if stop.wait(settings.reconcile_seconds):
            return
