"""SqlSink: the MetricsSink a worker hands to opd_core.train, writing to the store.

- Metrics are buffered in memory and written by a background thread every `heartbeat_seconds` (at most 2 s) in
  one transaction that also beats the run's heartbeat and records progress, and once more at close.
- Every call is also appended synchronously to the run folder (opd_core's LocalDirSink: metrics.jsonl,
  checkpoints.jsonl, videos.jsonl). That copy is the write-ahead log: a kill -9 loses at most the last couple of
  seconds of buffered rows, and `resume_from` puts them back from the file, so a resumed run's series has no
  gap even when the checkpoint it resumes from is newer than the last flush.
- The heartbeat transaction names the attempt this worker holds; when it matches nothing (the run was resumed
  elsewhere or deleted), the sink stops writing and `stop_requested` turns True.
- `close(deadline_seconds)` retries the final flush (metrics and artifact rows) until the deadline and says
  whether it got through; what it could not write stays in the run folder's files, from which
  `restore_from_run_folder` writes it later (worker.run_end).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opd_core.sinks import LocalDirSink, read_metrics
from worker import lifecycle
from worker.metric_rows import MetricPoint, delete_after, max_step, upsert_metrics
from worker.store import Store

log = logging.getLogger(__name__)


class SqlSink:
    def __init__(
        self,
        store: Store,
        run_id: int,
        attempt: int,
        *,
        run_dir: str,
        heartbeat_seconds: float = 1.0,
        cancel_poll_seconds: float = 0.1,
    ):
        self.store = store
        self.run_id = run_id
        self.attempt = attempt
        self.run_dir = run_dir  # relative to the data directory: the prefix of every stored artifact path
        self.out_dir = store.data_dir / run_dir
        self._local = LocalDirSink(self.out_dir)
        self._heartbeat_seconds = min(2.0, heartbeat_seconds)
        self._cancel_poll_seconds = cancel_poll_seconds
        self._pending: dict[tuple[str, int], MetricPoint] = {}
        self._pending_records: list[Callable[[], None]] = []  # checkpoint/video rows whose write failed
        self._progress: tuple[int, int] | None = None
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, so that an older batch never lands last
        self._owned = True
        self._cancel = False
        self._cancel_checked_at = 0.0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name=f"opd-sink-{run_id}", daemon=True)
        self._thread.start()

    # ---- MetricsSink -------------------------------------------------------------------------------------
    def log(self, metrics: dict[str, float], step: int) -> None:
        self._local.log(metrics, step)
        now = time.time()
        points = {(key, int(step)): MetricPoint(key, int(step), float(value), now) for key, value in metrics.items()}
        with self._buffer_lock:
            self._pending.update(points)

    def log_checkpoint(self, step: int, path: str, summary: dict[str, Any]) -> None:
        self._local.log_checkpoint(step, path, summary)
        try:
            self.flush()  # the curves shown next to a checkpoint are complete up to its step
        except Exception as exc:  # a busy database must not fail the run: the background thread retries
            log.warning("run %s: flush before checkpoint %s failed, will retry: %s", self.run_id, step, exc)
        self._record(
            lambda: lifecycle.record_checkpoint(self.store, self.run_id, step, self.stored_path(path), summary)
        )

    def log_video(self, step: int, task: str, success: bool, path: str) -> None:
        self._local.log_video(step, task, success, path)
        self._record(
            lambda: lifecycle.record_video(self.store, self.run_id, step, task, success, self.stored_path(path))
        )

    def progress(self, step: int, total: int) -> None:
        self._progress = (int(step), int(total))

    def resume_from(self, step: int) -> None:
        """Forget everything after `step`, in the run folder and in the database, then restore rows up to `step`
        that a killed worker logged but never flushed."""
        self._local.resume_from(step)
        with self._buffer_lock:
            self._pending = {k: p for k, p in self._pending.items() if p.step <= step}
        with self.store.session() as session:
            delete_after(session, self.run_id, step)
            lifecycle.forget_after(session, self.run_id, step)
            restore_from_run_folder(session, self.run_id, self.store.data_dir, self.run_dir, step)
            lifecycle.record_resumed(session, self.run_id, self.attempt, step)

    def close(self, deadline_seconds: float = 3.0) -> bool:
        """Stop the heartbeat thread and flush what is left, retrying for up to `deadline_seconds` while the
        store is unavailable. False when it did not get through: the rows are still in the run folder."""
        if self._closed:
            return True
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            return self._flush_until(time.monotonic() + deadline_seconds)
        finally:
            self._local.close()

    # ---- what the worker task uses -------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """Polled by the training loop once per step: the cancel flag, read at most every cancel_poll_seconds
        (one primary-key lookup); True as well once this worker no longer owns the run."""
        if not self._owned:
            return True
        now = time.monotonic()
        if now - self._cancel_checked_at >= self._cancel_poll_seconds:
            self._cancel_checked_at = now
            try:
                flag = lifecycle.cancel_requested(self.store, self.run_id, self.attempt)
            except Exception as exc:  # a busy database must not kill a training step; ask again next step
                log.warning("run %s: could not read the cancel flag: %s", self.run_id, exc)
                return self._cancel
            if flag is None:
                self._owned = False
                return True
            self._cancel = flag
        return self._cancel

    @property
    def owned(self) -> bool:
        return self._owned

    def stored_path(self, path: str) -> str:
        """A path the loop reported (relative to out_dir) as the database stores it (relative to the data dir)."""
        return stored_path(self.store.data_dir, self.run_dir, path)

    def flush(self) -> None:
        """Write buffered metrics and progress, and beat the heartbeat, in one transaction."""
        with self._flush_lock:
            with self._buffer_lock:
                batch, self._pending = self._pending, {}
            if not self._owned:
                return
            try:
                self._write(batch)
            except Exception:
                with self._buffer_lock:  # keep the rows for the next flush, without undoing newer values
                    self._pending = {**batch, **self._pending}
                raise
            self._retry_pending_records()

    # ---- internals ---------------------------------------------------------------------------------------
    def _write(self, batch: dict[tuple[str, int], MetricPoint]) -> None:
        step, total = self._progress or (None, None)
        with self.store.session() as session:
            # Heartbeat first: on SQLite it takes the write lock at once, and it tells us whether we still own it.
            if not lifecycle.touch(session, self.run_id, self.attempt, step, total):
                self._owned = False
                log.warning("run %s attempt %s is no longer ours: stopping without writing", self.run_id, self.attempt)
                return
            upsert_metrics(session, self.run_id, batch.values())

    def _beat_forever(self) -> None:
        failing = False
        while not self._stop.wait(self._heartbeat_seconds):
            try:
                self.flush()
                if failing:
                    log.warning("run %s: the database is back, metrics flushed", self.run_id)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning(
                        "run %s: flush failed, retrying every %.1f s: %s", self.run_id, self._heartbeat_seconds, exc
                    )
                failing = True

    def _flush_until(self, deadline: float) -> bool:
        tries = 0
        while True:
            try:
                self.flush()
                if tries:
                    log.warning("run %s: final flush got through after %d retries", self.run_id, tries)
                return True
            except Exception as exc:
                if time.monotonic() >= deadline:
                    log.warning("run %s: final flush still failing at the deadline: %s", self.run_id, exc)
                    return False
                if not tries:
                    log.warning("run %s: final flush failed, retrying until the deadline: %s", self.run_id, exc)
                tries += 1
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def _record(self, write: Callable[[], None]) -> None:
        if not self._owned:
            return
        try:
            write()
        except Exception as exc:
            log.warning("run %s: could not record an artifact row, will retry: %s", self.run_id, exc)
            self._pending_records.append(write)

    def _retry_pending_records(self) -> None:
        while self._pending_records and self._owned:
            self._pending_records[0]()
            self._pending_records.pop(0)


def restore_from_run_folder(session, run_id: int, data_dir: Path, run_dir: str, step: int | None) -> None:
    """Write what the run folder's files (the write-ahead log) hold up to `step` (None: all of it) and the store
    may lack: metric rows from the newest flushed step on (that step may have been flushed in part), every
    checkpoint and video row. Upserts and replacements only, so writing twice changes nothing."""
    up_to = float("inf") if step is None else step
    out_dir = data_dir / run_dir
    flushed_until = max_step(session, run_id)
    start = -1 if flushed_until is None else flushed_until
    now = time.time()
    points = [
        MetricPoint(key, row["step"], value, now)
        for row in read_metrics(out_dir)
        if start <= row["step"] <= up_to
        for key, value in row.items()
        if key != "step"
    ]
    upsert_metrics(session, run_id, points)
    for row in _read_jsonl(out_dir / "checkpoints.jsonl"):
        if row["step"] <= up_to:
            lifecycle.put_checkpoint(
                session, run_id, row["step"], stored_path(data_dir, run_dir, row["path"]), row.get("summary") or {}
            )
    for row in _read_jsonl(out_dir / "videos.jsonl"):
        if row["step"] <= up_to:
            lifecycle.put_video(
                session, run_id, row["step"], row["task"], row["success"], stored_path(data_dir, run_dir, row["path"])
            )


def stored_path(data_dir: Path, run_dir: str, path: str) -> str:
    """A path the loop reported (relative to out_dir, or absolute) as the database stores it (relative to the
    data directory)."""
    path_obj = Path(path)
    if path_obj.is_absolute():
        try:
            return path_obj.relative_to(data_dir).as_posix()
        except ValueError:
            return path_obj.as_posix()
    return f"{run_dir}/{path_obj.as_posix()}"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
