"""Test support, no tests: plain stand-ins for the worker API's records and an in-memory API for the dashboard.

The records mirror worker.queries' dataclasses field for field, so the app's duck-typed logic sees the same
shapes as in production; FakeApi implements the worker.api contract the pages use, in memory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from opd_core.config import RunConfig

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    id: int
    name: str = "run"
    status: str = "finished"
    config: dict[str, Any] = field(default_factory=dict)
    progress: float = 1.0
    step: int = 0
    total_steps: int = 0
    queue: str = "cpu"
    attempt: int = 1
    out_dir: str = ""
    created_at: datetime = T0
    started_at: datetime | None = T0
    finished_at: datetime | None = T0 + timedelta(minutes=3)
    heartbeat_at: datetime | None = None
    worker_host: str | None = None
    error: str | None = None
    traceback: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    parent_run_id: int | None = None
    sweep_id: int | None = None
    cancel_requested: bool = False


@dataclass
class Series:
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray


@dataclass(frozen=True)
class Checkpoint:
    """path and Video.path are relative to the data directory, as the store keeps them."""

    run_id: int
    step: int
    path: str
    summary: dict[str, Any]
    created_at: datetime = T0


@dataclass(frozen=True)
class Video:
    run_id: int
    step: int
    task: str
    success: bool
    path: str
    created_at: datetime = T0


@dataclass(frozen=True)
class Sweep:
    id: int
    name: str
    grid: dict[str, list]
    created_at: datetime
    run_ids: list[int]
    status_counts: dict[str, int]


@dataclass(frozen=True)
class RunEvent:
    """worker.api's RunEvent: one line of a run's status history (queued, started, re-queued, resumed, ...)."""

    at: datetime
    kind: str
    message: str


def series(steps, values) -> Series:
    steps = np.asarray(steps, dtype=np.int64)
    return Series(steps, np.asarray(values, dtype=np.float64), 1.7e9 + steps.astype(np.float64))


def config(**changes) -> dict[str, Any]:
    base = RunConfig(teacher_checkpoint="/ckpt/teacher", student_checkpoint="/ckpt/student").to_dict()
    return {**base, **changes}


def summary(seen: float, per_task: dict[str, float] | None = None, unseen: float | None = None) -> dict:
    return {"seen_success": seen, "unseen_success": unseen, "per_task": per_task or {}}


class FakeApi:
    """The worker.api contract in memory. `unavailable = "message"` makes every call raise StoreUnavailable."""

    # the error classes the real API raises, so the pages handle exactly those
    from worker.api import ConfigError, QueueUnavailable, RunNotFound, RunStateError, StoreUnavailable

    def __init__(self, data_dir: str = "/tmp/opd-fake-data"):
        self.data_dir = data_dir
        self.runs: dict[int, Run] = {}
        self.series: dict[int, dict[str, Series]] = {}
        self.checkpoint_rows: dict[int, list[Checkpoint]] = {}
        self.video_rows: dict[int, list[Video]] = {}
        self.sweeps: dict[int, Sweep] = {}
        self.events: dict[int, list[RunEvent]] = {}
        self.calls: list[tuple] = []
        self.unavailable: str | None = None
        self._ids = itertools.count(1)
        self._sweep_ids = itertools.count(1)

    # ---------------------------------------------------------------- helpers for tests
    def add_run(self, **fields) -> Run:
        run_id = fields.pop("id", None) or next(self._ids)
        fields.setdefault("config", config())
        fields.setdefault("name", fields["config"].get("name", f"run-{run_id}"))
        fields.setdefault("out_dir", f"runs/{run_id}")
        run = Run(run_id, **fields)
        self.runs[run_id] = run
        return run

    def _check(self, *call):
        self.calls.append(call)
        if self.unavailable:
            raise self.StoreUnavailable(self.unavailable)

    # ---------------------------------------------------------------- actions
    def launch(self, config_or_dict, tags=(), notes="", sweep_id=None) -> int:
        self._check("launch", config_or_dict)
        data = config_or_dict if isinstance(config_or_dict, dict) else config_or_dict.to_dict()
        RunConfig.from_dict(data).validate()
        run = self.add_run(
            config=dict(data),
            status="queued",
            progress=0.0,
            started_at=None,
            finished_at=None,
            tags=list(tags),
            notes=notes,
            sweep_id=sweep_id,
            name=data.get("name", "run"),
        )
        return run.id

    def launch_sweep(self, base_config, grid, name):
        self._check("launch_sweep", base_config, grid, name)
        sweep_id = next(self._sweep_ids)
        base = base_config if isinstance(base_config, dict) else base_config.to_dict()
        names = list(grid)
        run_ids = [
            self.launch({**base, **dict(zip(names, values))}, sweep_id=sweep_id)
            for values in itertools.product(*(grid[n] for n in names))
        ]
        self.sweeps[sweep_id] = Sweep(sweep_id, name, dict(grid), T0, run_ids, {"queued": len(run_ids)})
        return sweep_id, run_ids

    def cancel(self, run_id):
        self._check("cancel", run_id)
        self.runs[run_id] = replace(self.runs[run_id], status="cancelled")
        return "cancelled"

    def resume(self, run_id):
        self._check("resume", run_id)
        if self.runs[run_id].status not in ("crashed", "cancelled", "failed"):
            raise self.RunStateError(
                f"run {run_id} is {self.runs[run_id].status}: only crashed, cancelled or failed runs can be resumed"
            )
        self.runs[run_id] = replace(self.runs[run_id], status="queued", attempt=self.runs[run_id].attempt + 1)
        self.events.setdefault(run_id, []).append(
            RunEvent(T0 + timedelta(hours=1), "resumed", f"resumed from step {self.runs[run_id].step}")
        )

    def delete(self, run_id):
        self._check("delete", run_id)
        if self.runs[run_id].status == "running":
            raise self.RunStateError(f"run {run_id} is running: cancel it first")
        del self.runs[run_id]

    def set_tags(self, run_id, tags):
        self._check("set_tags", run_id, tags)
        self.runs[run_id] = replace(self.runs[run_id], tags=list(tags))

    def set_notes(self, run_id, notes):
        self._check("set_notes", run_id, notes)
        self.runs[run_id] = replace(self.runs[run_id], notes=notes)

    # ---------------------------------------------------------------- queries
    def list_runs(self, status=None, sweep_id=None, tag=None):
        self._check("list_runs", status, sweep_id, tag)
        runs = sorted(self.runs.values(), key=lambda r: -r.id)
        return [
            r
            for r in runs
            if (status is None or r.status == status)
            and (sweep_id is None or r.sweep_id == sweep_id)
            and (tag is None or tag in r.tags)
        ]

    def get_run(self, run_id):
        self._check("get_run", run_id)
        return self.runs.get(run_id)

    def metric_keys(self, run_ids):
        self._check("metric_keys", run_ids)
        return sorted({k for r in run_ids for k in self.series.get(r, {})})

    def metrics(self, run_ids, keys, min_step=None, with_wall_time=False):
        self._check("metrics", run_ids, keys, *([min_step] if min_step is not None else []))
        low = -1 if min_step is None else min_step
        result = {}
        for run_id in run_ids:
            for key, found in self.series.get(run_id, {}).items():
                keep = found.steps >= low
                if key in keys and keep.any():
                    result.setdefault(run_id, {})[key] = Series(
                        found.steps[keep], found.values[keep], found.wall_times[keep]
                    )
        return result

    def latest_metrics(self, run_ids, keys):
        self._check("latest_metrics", run_ids, keys)
        return {
            r: {
                k: (int(s.steps[-1]), float(s.values[-1]))
                for k, s in self.series.get(r, {}).items()
                if k in keys and len(s.steps)
            }
            for r in run_ids
            if r in self.series
        }

    def checkpoints(self, run_id):
        self._check("checkpoints", run_id)
        return sorted(self.checkpoint_rows.get(run_id, []), key=lambda c: c.step)

    def videos(self, run_id, step=None):
        self._check("videos", run_id, step)
        return [v for v in self.video_rows.get(run_id, []) if step is None or v.step == step]

    def run_events(self, run_id):
        self._check("run_events", run_id)
        return sorted(self.events.get(run_id, []), key=lambda e: e.at)

    def list_sweeps(self):
        self._check("list_sweeps")
        return sorted(self.sweeps.values(), key=lambda s: -s.id)

    def artifact_path(self, relative):
        return f"{self.data_dir}/{relative}"

    # ---------------------------------------------------------------- the action inspector
    inspection_frames = 12
    """Frames with an action in every fake rollout."""

    def inspector_teachers(self, run_id):
        from worker.inspection import TeacherChoice

        self._check("inspector_teachers", run_id)
        own = self.runs[run_id].config.get("teacher_checkpoint")
        return ([TeacherChoice(f"this run's teacher ({own})", own, "run")] if own else []) + [
            TeacherChoice("shipped tabletop object teacher", "/repo/assets/tabletop/object/teacher", "shipped")
        ]

    def inspect_actions(self, run_id, step, task, frame, teacher=None):
        """Two Gaussian bumps over the 256 bins per dimension, moving with the frame: the student sharp on one of
        the teacher's two modes (mode-seeking), so that reverse and forward KL differ."""
        from opd_core.action_inspector import DIMENSION_NAMES, ActionDistributions
        from worker.inspection import ActionInspection

        self._check("inspect_actions", run_id, step, task, frame, teacher)
        if not any(v.step == step and v.task == task for v in self.video_rows.get(run_id, [])):
            raise ValueError(f"run {run_id} filmed no episode of task {task!r} at step {step}")
        if not 0 <= frame < self.inspection_frames:
            raise ValueError(
                f"frame {frame} is out of range: the episode took actions at frames 0..{self.inspection_frames - 1}"
            )
        bins = np.arange(256)
        centres = 60 + 20 * np.arange(7)[:, None] + 3 * frame
        bump = lambda centre, width: np.exp(-0.5 * ((bins - centre) / width) ** 2)  # noqa: E731
        student = bump(centres, 3.0) + 1e-9
        teacher_p = 0.6 * bump(centres, 6.0) + 0.4 * bump(centres + 40, 6.0) + 1e-9
        student, teacher_p = student / student.sum(-1, keepdims=True), teacher_p / teacher_p.sum(-1, keepdims=True)
        kl = lambda p, q: (p * np.log(p / q)).sum(-1)  # noqa: E731
        h = lambda p: -(p * np.log(p)).sum(-1)  # noqa: E731
        chosen = student.argmax(-1)
        shown = ActionDistributions(
            frame,
            frame,
            DIMENSION_NAMES,
            student,
            teacher_p,
            chosen,
            chosen,
            teacher_p.argmax(-1),
            kl(student, teacher_p),
            kl(teacher_p, student),
            h(student),
            h(teacher_p),
            np.tile(np.linspace(-1, 1, 256), (7, 1)),
        )
        choice = next((c for c in self.inspector_teachers(run_id) if teacher in (None, c.path)), None)
        image = np.full((64, 64, 3), 40 + 10 * frame, dtype=np.uint8)
        return ActionInspection(
            run_id,
            step,
            task,
            frame,
            "tabletop",
            self.inspection_frames,
            choice,
            shown,
            image,
            True,
            self.inspection_frames + 1,
            True,
            self.inspection_frames,
            "solo",
            0.0,
            0.0,
        )
