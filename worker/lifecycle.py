"""Run status transitions, each one conditional UPDATE so that racing processes cannot both win.

    queued   --claim-->  running  --finish-->  finished | failed | cancelled
    queued   --request_cancel-->  cancelled           (running: the flag its worker polls every step)
    running with a heartbeat older than the threshold  = crashed  (queries say so; reap_stale writes it)
    crashed | cancelled | failed  --requeue_for_resume-->  queued as attempt + 1, resuming
    finished | crashed | cancelled | failed  --requeue_longer-->  queued as attempt + 1, resuming to a longer length
    queued too long with no message waiting  --mark_resent-->  queued (same attempt, message sent again)

Every transition writes a row to run_events (the run's status history, with why) in the same transaction.
Every transition a worker makes names the attempt it holds: once a run was requeued (attempt bumped), the old
worker's writes match no row, so it notices that it lost the run instead of overwriting the new attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from worker.models import Checkpoint, Run, RunEvent, Video
from worker.store import Store, json_safe, utcnow

RESUMABLE_STATUSES = ("crashed", "cancelled", "failed")
DEFAULT_OUT_DIR = "runs/run"  # RunConfig's default: not an override worth a word


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run the attempt it just claimed."""

    run_id: int
    attempt: int
    config: dict[str, Any]
    resume: bool


def add_event(session, run_id: int, kind: str, message: str = "") -> None:
    """One entry of the run's status history, in the caller's transaction."""
    session.add(RunEvent(run_id=run_id, at=utcnow(), kind=kind, message=message))


def stale_cutoff(stale_after_seconds: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(seconds=stale_after_seconds)


def is_stale_running(stale_after_seconds: float):
    """SQL condition: a 'running' run whose heartbeat is older than the threshold has really crashed."""
    return and_(Run.status == "running", Run.heartbeat_at < stale_cutoff(stale_after_seconds))


def create_run(store: Store, config: dict[str, Any], **fields: Any) -> int:
    """Insert a queued run in its own transaction; `fields` are `add_run`'s (name, queue, total_steps, ...)."""
    with store.session() as session:
        return add_run(session, store, config, **fields)


def add_run(
    session,
    store: Store,
    config: dict[str, Any],
    *,
    name: str,
    queue: str,
    total_steps: int,
    tags=(),
    notes: str = "",
    sweep_id: int | None = None,
    parent_run_id: int | None = None,
) -> int:
    """Add a queued run to `session`; its config's out_dir becomes the run folder `runs/<id>` (data-dir relative)."""
    now = utcnow()
    run = Run(
        name=name,
        config={},
        status="queued",
        queue=queue,
        attempt=1,
        resume=False,
        cancel_requested=False,
        step=0,
        total_steps=total_steps,
        progress=0.0,
        created_at=now,
        queued_at=now,
        tags=list(tags),
        notes=notes,
        sweep_id=sweep_id,
        parent_run_id=parent_run_id,
    )
    session.add(run)
    session.flush()  # assigns the id, which names the run folder
    run_dir = store.settings.run_dir(run.id)
    run.config = json_safe({**config, "out_dir": run_dir})
    note = ""
    if config.get("out_dir") not in (None, "", DEFAULT_OUT_DIR, run_dir):
        note = f"; its out_dir {config['out_dir']!r} is replaced by the lab's run folder {run_dir}"
    add_event(session, run.id, "queued", f"queued on {queue} as attempt 1{note}")
    return run.id


def claim(store: Store, run_id: int, attempt: int, worker_host: str) -> Claim | None:
    """queued -> running for exactly this attempt; None when the run is not (or no longer) ours to start."""
    now = utcnow()
    with store.session() as session:
        claimed = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status == "queued")
            .values(
                status="running",
                started_at=func.coalesce(Run.started_at, now),
                heartbeat_at=now,
                finished_at=None,
                worker_host=worker_host,
                error=None,
                traceback=None,
            )
        ).rowcount
        if not claimed:
            return None
        config, resume = session.execute(select(Run.config, Run.resume).where(Run.id == run_id)).one()
        add_event(
            session,
            run_id,
            "running",
            f"attempt {attempt} started on {worker_host}" + (", resuming from its newest checkpoint" if resume else ""),
        )
        return Claim(run_id=run_id, attempt=attempt, config=config, resume=resume)


def touch(session, run_id: int, attempt: int, step: int | None = None, total: int | None = None) -> bool:
    """Heartbeat (and progress) inside the caller's transaction. A run that was marked crashed while its worker
    was merely slow comes back to running. False when the attempt is no longer ours (resumed elsewhere,
    deleted): the caller must stop writing."""
    values: dict[str, Any] = {"heartbeat_at": utcnow(), "status": "running"}
    if step is not None and total:
        values.update(step=step, total_steps=total, progress=min(1.0, step / total))
    revived = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.attempt == attempt, Run.status == "crashed")
        .values(status="running", error=None, finished_at=None)
    ).rowcount
    if revived:
        add_event(session, run_id, "running", f"attempt {attempt} is alive again (it was marked crashed)")
    return bool(
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status.in_(("running", "crashed")))
            .values(**values)
        ).rowcount
    )


def cancel_requested(store: Store, run_id: int, attempt: int) -> bool | None:
    """The cancel flag of our attempt; None when the attempt is no longer ours."""
    with store.session() as session:
        row = session.execute(select(Run.cancel_requested).where(Run.id == run_id, Run.attempt == attempt)).first()
    return None if row is None else bool(row[0])


def finish(
    store: Store,
    run_id: int,
    attempt: int,
    status: str,
    *,
    step: int | None = None,
    error: str | None = None,
    traceback: str | None = None,
) -> bool:
    values = finish_values(status, step=step, error=error, traceback=traceback)
    with store.session() as session:
        return finish_in(session, run_id, attempt, status, values)


def finish_values(
    status: str, *, step: int | None = None, error: str | None = None, traceback: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": status,
        "finished_at": utcnow(),
        "heartbeat_at": utcnow(),
        "error": error,
        "traceback": traceback,
    }
    if status == "finished":
        values["progress"] = 1.0
    if step is not None:
        values["step"] = step
    return values


def finish_in(session, run_id: int, attempt: int, status: str, values: dict[str, Any], note: str = "") -> bool:
    """The end of an attempt inside the caller's transaction; False when the attempt is no longer ours."""
    ended = bool(
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status.in_(("running", "crashed")))
            .values(**values)
        ).rowcount
    )
    if ended:
        detail = values.get("error") or (f"at step {values['step']}" if values.get("step") is not None else "")
        add_event(session, run_id, status, f"attempt {attempt} {status}" + (f": {detail}" if detail else "") + note)
    return ended


def request_cancel(store: Store, run_id: int) -> str | None:
    """A queued run is cancelled at once (its message will be refused); a running one gets the flag that its
    worker polls every step. Returns the status after the request, None for an unknown run."""
    with store.session() as session:
        if session.execute(
            update(Run).where(Run.id == run_id, Run.status == "queued").values(status="cancelled", finished_at=utcnow())
        ).rowcount:
            add_event(session, run_id, "cancelled", "cancelled while queued")
        if session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "running", Run.cancel_requested.is_(False))
            .values(cancel_requested=True)
        ).rowcount:
            add_event(session, run_id, "cancel", "cancel requested: the run stops after its current step")
        return session.scalar(select(Run.status).where(Run.id == run_id))


def requeue_for_resume(
    store: Store, run_id: int, stale_after_seconds: float, *, why: str = "requested", only_attempt: int | None = None
) -> tuple[int, str] | None:
    """crashed / cancelled / failed (or running with a stale heartbeat) -> queued with resume and a new
    attempt. Returns (attempt, queue), or None when the run is not resumable (or, with `only_attempt`, no
    longer at that attempt)."""
    with store.session() as session:
        resumable = or_(Run.status.in_(RESUMABLE_STATUSES), is_stale_running(stale_after_seconds))
        condition = [Run.id == run_id, resumable] + ([Run.attempt == only_attempt] if only_attempt else [])
        previous = session.execute(select(Run.status, Run.error).where(*condition)).first()
        updated = session.execute(
            update(Run)
            .where(*condition)
            .values(
                **_queued_again(),
            )
        ).rowcount
        if not updated:
            return None
        attempt, queue = session.execute(select(Run.attempt, Run.queue).where(Run.id == run_id)).one()
        status, error = previous if previous is not None else ("?", None)
        add_event(
            session,
            run_id,
            "resume",
            f"queued as attempt {attempt} to resume ({why}) after it was {status}" + (f": {error}" if error else ""),
        )
        return attempt, queue


def _queued_again() -> dict:
    """The columns of a run queued as its next attempt, resuming from its newest checkpoint."""
    return {
        "status": "queued",
        "attempt": Run.attempt + 1,
        "resume": True,
        "cancel_requested": False,
        "finished_at": None,
        "error": None,
        "traceback": None,
        "queued_at": utcnow(),
        "resumed_from_step": None,
    }


def requeue_longer(store: Store, run_id: int, lengths: dict[str, int], total_steps: int) -> tuple[int, str] | None:
    """A finished (or resumable) run continued to a longer length: its config gets `lengths` (steps, grpo_steps),
    and it is queued as attempt + 1 resuming from its newest checkpoint. Returns (attempt, queue), or None when
    the run is queued or running (nothing is changed then)."""
    with store.session() as session:
        run = session.get(Run, run_id)
        if run is None or run.status not in ("finished", *RESUMABLE_STATUSES):
            return None
        before, step = run.total_steps, run.step
        updated = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == run.attempt, Run.status == run.status)
            .values(
                config={**run.config, **lengths},
                total_steps=total_steps,
                progress=min(1.0, step / total_steps) if total_steps else 0.0,
                **_queued_again(),
            )
        ).rowcount
        if not updated:
            return None
        attempt, queue = session.execute(select(Run.attempt, Run.queue).where(Run.id == run_id)).one()
        add_event(
            session,
            run_id,
            "resume",
            f"queued as attempt {attempt} to continue from step {step} to {total_steps} steps (was {before})",
        )
        return attempt, queue


def mark_resent(store: Store, run_id: int, attempt: int, reason: str, older_than_seconds: float) -> bool:
    """A queued attempt whose message is lost is about to be sent again: restart its queued clock and say why.
    False when it left `queued` meanwhile, or another worker's reconciler just did the same (then nothing is
    sent)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with store.session() as session:
        resent = bool(
            session.execute(
                update(Run)
                .where(
                    Run.id == run_id,
                    Run.attempt == attempt,
                    Run.status == "queued",
                    func.coalesce(Run.queued_at, Run.created_at) < cutoff,
                )
                .values(queued_at=utcnow())
            ).rowcount
        )
        if resent:
            add_event(session, run_id, "requeued", reason)
        return resent


def stranded_candidates(store: Store, older_than_seconds: float) -> list[tuple[int, int, str]]:
    """(run id, attempt, queue) of runs queued for longer than `older_than_seconds` (oldest first)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with store.session() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Run.id, Run.attempt, Run.queue)
                .where(Run.status == "queued", func.coalesce(Run.queued_at, Run.created_at) < cutoff)
                .order_by(Run.id)
            )
        ]


def crashed_with_attempts_left(store: Store) -> list[tuple[int, int, int]]:
    """(run id, attempt, max_attempts) of crashed runs whose config allows another attempt."""
    with store.session() as session:
        rows = session.execute(select(Run.id, Run.attempt, Run.config).where(Run.status == "crashed")).all()
    left = []
    for run_id, attempt, config in rows:
        max_attempts = int((config or {}).get("max_attempts") or 1)
        if attempt < max_attempts:
            left.append((run_id, attempt, max_attempts))
    return left


def mark_unqueued(store: Store, run_id: int, attempt: int, reason: str) -> None:
    """The broker refused the message: the run can never start, so say why instead of leaving it queued."""
    with store.session() as session:
        if session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == attempt, Run.status == "queued")
            .values(status="failed", finished_at=utcnow(), error=reason)
        ).rowcount:
            add_event(session, run_id, "failed", reason)


def reap_stale(store: Store, stale_after_seconds: float) -> list[int]:
    """Mark running runs whose heartbeat went stale as crashed; returns their ids."""
    # One UPDATE ... RETURNING: on SQLite a read followed by a write could fail at once on a busy database.
    reason = lost_worker_reason(stale_after_seconds)
    with store.session() as session:
        crashed = sorted(
            session.scalars(
                update(Run)
                .where(is_stale_running(stale_after_seconds))
                .values(status="crashed", finished_at=Run.heartbeat_at, error=func.coalesce(Run.error, reason))
                .returning(Run.id)
            )
        )
        for run_id in crashed:
            add_event(session, run_id, "crashed", reason)
        return crashed


def lost_worker_reason(stale_after_seconds: float) -> str:
    return (
        f"worker lost: no heartbeat for more than {stale_after_seconds:g} s "
        "(killed, out of memory, machine or network down)"
    )


def record_checkpoint(store: Store, run_id: int, step: int, path: str, summary: dict[str, Any]) -> None:
    with store.session() as session:
        put_checkpoint(session, run_id, step, path, summary)


def record_video(store: Store, run_id: int, step: int, task: str, success: bool, path: str) -> None:
    with store.session() as session:
        put_video(session, run_id, step, task, success, path)


def put_checkpoint(session, run_id: int, step: int, path: str, summary: dict[str, Any]) -> None:
    """One row per (run, step): a resumed run that writes the same step again replaces it."""
    session.execute(delete(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
    session.add(Checkpoint(run_id=run_id, step=step, path=path, summary=json_safe(summary), created_at=utcnow()))


def put_video(session, run_id: int, step: int, task: str, success: bool, path: str) -> None:
    session.execute(delete(Video).where(Video.run_id == run_id, Video.step == step, Video.task == task))
    session.add(Video(run_id=run_id, step=step, task=task, success=bool(success), path=path, created_at=utcnow()))


def record_resumed(session, run_id: int, attempt: int, step: int) -> None:
    """The attempt continues after checkpoint `step` (written by the worker's sink when train() resumes)."""
    if session.execute(
        update(Run).where(Run.id == run_id, Run.attempt == attempt).values(resumed_from_step=step)
    ).rowcount:
        add_event(session, run_id, "resumed", f"attempt {attempt} resumed from the checkpoint of step {step}")


def forget_after(session, run_id: int, step: int) -> None:
    """A resumed run restarts after `step`: checkpoints and videos of later steps no longer exist."""
    session.execute(delete(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step > step))
    session.execute(delete(Video).where(Video.run_id == run_id, Video.step > step))
