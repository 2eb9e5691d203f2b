"""The lab's Python API: the only module the dashboard imports (it never touches Celery or SQL itself).

Actions: launch, launch_sweep, launch_group, cancel, resume, extend, delete, set_tags, set_notes. Queries:
list_runs, get_run, run_events, metric_keys, metrics, latest_metrics, checkpoints, videos, list_sweeps,
artifact_path. Everything returned is a plain dataclass (see worker.queries) or dict of numpy arrays.

Settings come from the environment (OPD_DATA_DIR, OPD_DATABASE_URL, OPD_BROKER_URL, ...) on first use, when the
database is also migrated to the newest schema; `configure(settings)` points the API elsewhere (tests, tools).
Errors: ConfigError (a bad config, naming the field; nothing is written), StoreUnavailable (the database is
busy or unreachable), QueueUnavailable (the broker refused the message; nothing was launched), RunNotFound,
RunStateError (e.g. resuming a finished run).

Importing this module imports no Celery and reads no environment: the first call does (Celery's app is built on
the first send).
"""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import update

from opd_core.config import ConfigError, RunConfig
from worker import lifecycle, queries
from worker.broker import RUN_TASK, ensure_broker_folders, queue_for
from worker.inspection import ActionInspection, TeacherChoice
from worker.metric_rows import MetricSeries
from worker.migrate import upgrade_to_head
from worker.models import Metric, Run, Sweep
from worker.queries import CheckpointInfo, RunEvent, RunInfo, SweepInfo, VideoInfo

if TYPE_CHECKING:
    from celery import Celery
from worker.settings import INPUT_PATH_FIELDS, Settings
from worker.store import Store, StoreUnavailable, describe_url, utcnow

__all__ = [
    "launch",
    "launch_sweep",
    "launch_group",
    "cancel",
    "resume",
    "extend",
    "delete",
    "set_tags",
    "set_notes",
    "list_runs",
    "get_run",
    "metric_keys",
    "metrics",
    "latest_metrics",
    "checkpoints",
    "videos",
    "list_sweeps",
    "artifact_path",
    "reap_stale",
    "configure",
    "settings",
    "ConfigError",
    "StoreUnavailable",
    "QueueUnavailable",
    "RunNotFound",
    "RunStateError",
    "RunInfo",
    "CheckpointInfo",
    "VideoInfo",
    "SweepInfo",
    "MetricSeries",
    "run_events",
    "RunEvent",
    "inspect_actions",
    "inspector_teachers",
    "ActionInspection",
    "TeacherChoice",
]


class QueueUnavailable(RuntimeError):
    """The broker could not take the run's message: nothing was launched (see launch, launch_sweep)."""


class RunNotFound(KeyError):
    def __str__(self) -> str:
        return f"no run with id {self.args[0]}"


class RunStateError(RuntimeError):
    """The action does not apply to the run in its current status."""


# ---- the configured lab --------------------------------------------------------------------------------------
class _Lab:
    def __init__(self, lab_settings: Settings):
        self.settings = lab_settings
        try:
            self.store = Store(lab_settings)
            upgrade_to_head(self.store.engine)
        except OSError as exc:  # e.g. a data directory that cannot be created or is not a directory
            raise StoreUnavailable(f"cannot open the data directory {lab_settings.data_dir}: {exc}") from exc
        self._celery: Celery | None = None

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            from worker.celery_app import make_celery  # Celery is imported by the first send, not by the app

            ensure_broker_folders(self.settings)
            self._celery = make_celery(self.settings)
        return self._celery

    def close(self) -> None:
        self.store.close()


_lab: _Lab | None = None
_lab_lock = threading.Lock()  # Streamlit serves sessions from threads


def configure(lab_settings: Settings | None) -> None:
    """Use these settings from now on (None: read the environment again on next use)."""
    global _lab
    with _lab_lock:
        if _lab is not None:
            _lab.close()
        _lab = _Lab(lab_settings) if lab_settings is not None else None


def _current() -> _Lab:
    global _lab
    with _lab_lock:
        if _lab is None:
            _lab = _Lab(Settings.from_env())
        return _lab


def settings() -> Settings:
    return _current().settings


# ---- actions ----------------------------------------------------------------------------------------------
def launch(
    config_or_dict: RunConfig | dict[str, Any],
    tags: Sequence[str] = (),
    notes: str = "",
    sweep_id: int | None = None,
    parent_run_id: int | None = None,
) -> int:
    """Validate and queue a run; returns its id. A bad config raises ConfigError naming the field, before
    anything is written. The run's out_dir is always `runs/<id>` under the data directory (the lab keeps every
    run in its own folder, which workers on other machines share): a config's own out_dir is replaced, and the
    run's history says so. Relative paths in teacher_checkpoint, student_checkpoint and demos are read relative
    to the data directory. When the broker does not take the message, QueueUnavailable says why and no run is
    left behind."""
    config = _validated(config_or_dict)
    lab = _current()
    run_id = lifecycle.create_run(
        lab.store,
        config.to_dict(),
        name=config.name,
        queue=queue_for(config.device),
        total_steps=config.total_steps,
        tags=tags,
        notes=notes,
        sweep_id=sweep_id,
        parent_run_id=parent_run_id,
    )
    try:
        _send(lab, run_id, attempt=1, queue=queue_for(config.device))
    except QueueUnavailable as exc:
        _forget_unsent(lab, [run_id])
        raise QueueUnavailable(f"{exc}; nothing was launched") from exc.__cause__
    return run_id


def launch_sweep(
    base_config: RunConfig | dict[str, Any], grid: dict[str, list], name: str, tags: Sequence[str] = ()
) -> tuple[int, list[int]]:
    """Queue one run per point of the cartesian product of `grid` (config field -> values) over `base_config`,
    as one sweep, every run with `tags`. Every config is validated before anything is written."""
    base = _as_dict(base_config)
    names = _check_grid(grid)
    configs = []
    for values in itertools.product(*(grid[field_name] for field_name in names)):
        point = dict(zip(names, values))
        label = " ".join(f"{key}={value}" for key, value in point.items())
        configs.append(_validated({**base, **point, "name": f"{name} {label}".strip()}))
    return _launch_as_sweep(configs, name, {key: list(grid[key]) for key in names}, tags)


def launch_group(
    configs: Sequence[RunConfig | dict[str, Any]], name: str, tags: Sequence[str] = ()
) -> tuple[int, list[int]]:
    """Queue these runs as one sweep (configs that are not a grid's product, e.g. one per seed with its own
    starting checkpoint); the sweep's grid lists, per field that differs between them, each run's value in order.
    Every config is validated before anything is written."""
    if not configs:
        raise ConfigError("configs", "a sweep needs at least one run")
    dicts = [_as_dict(config) for config in configs]
    differ = [key for key in dicts[0] if key not in ("name", "out_dir") and len({repr(d.get(key)) for d in dicts}) > 1]
    validated = [_validated(d) for d in dicts]
    return _launch_as_sweep(validated, name, {key: [d.get(key) for d in dicts] for key in differ}, tags)


def _launch_as_sweep(
    configs: list[RunConfig], name: str, grid: dict[str, list], tags: Sequence[str]
) -> tuple[int, list[int]]:
    lab = _current()
    with lab.store.session() as session:
        sweep = Sweep(name=name, grid=grid, created_at=utcnow())
        session.add(sweep)
        session.flush()
        sweep_id = sweep.id
        run_ids = [
            lifecycle.add_run(
                session,
                lab.store,
                config.to_dict(),
                name=config.name,
                queue=queue_for(config.device),
                total_steps=config.total_steps,
                tags=tags,
                sweep_id=sweep_id,
            )
            for config in configs
        ]
    for index, (run_id, config) in enumerate(zip(run_ids, configs)):
        try:
            _send(lab, run_id, attempt=1, queue=queue_for(config.device))
        except QueueUnavailable as exc:
            sent = run_ids[:index]
            _forget_unsent(lab, run_ids[index:], sweep_id=None if sent else sweep_id)
            what = (
                f"runs {', '.join(map(str, sent))} of sweep {sweep_id} are queued, the other "
                f"{len(run_ids) - index} were not launched"
                if sent
                else "nothing was launched"
            )
            raise QueueUnavailable(f"{exc}; {what}") from exc.__cause__
    return sweep_id, run_ids


def cancel(run_id: int) -> str:
    """Cancel a queued run at once, or ask a running one to stop after its current step (it then writes a
    checkpoint and ends 'cancelled'). Returns the run's status after the request."""
    status = lifecycle.request_cancel(_current().store, run_id)
    if status is None:
        raise RunNotFound(run_id)
    return status


def resume(run_id: int) -> None:
    """Queue a crashed, cancelled or failed run again under the same id; it continues from its newest
    checkpoint, and its metric series continues with no gap and no duplicate step."""
    lab = _current()
    requeued = lifecycle.requeue_for_resume(lab.store, run_id, lab.settings.stale_after_seconds)
    if requeued is None:
        run = _get(run_id)
        raise RunStateError(f"run {run_id} is {run.status}: only crashed, cancelled or failed runs can be resumed")
    attempt, queue = requeued
    _send(lab, run_id, attempt=attempt, queue=queue)


def extend(run_id: int, **lengths: int) -> None:
    """Continue a run to a longer length under the same id (`steps=`, and `grpo_steps=` for opd_then_grpo): a
    finished, crashed, cancelled or failed run is queued again and resumes from its newest checkpoint, its metric
    series continuing. A length not longer than the run's is refused (RunStateError), as is a queued or running
    run."""
    unknown = set(lengths) - {"steps", "grpo_steps"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "only steps and grpo_steps can be extended")
    lab = _current()
    run = _get(run_id)
    config = RunConfig.from_dict({**run.config, **lengths}).validate()
    if config.total_steps <= run.total_steps:
        raise RunStateError(
            f"run {run_id} has {run.total_steps} steps: extending it needs more, not {config.total_steps}"
        )
    requeued = lifecycle.requeue_longer(lab.store, run_id, dict(lengths), config.total_steps)
    if requeued is None:
        raise RunStateError(f"run {run_id} is {run.status}: only an ended run can be extended")
    attempt, queue = requeued
    _send(lab, run_id, attempt=attempt, queue=queue)


def delete(run_id: int) -> None:
    """Delete a run that is not running: its rows and its folder under the data directory."""
    lab = _current()
    run = _get(run_id)
    if run.status == "running":
        raise RunStateError(f"run {run_id} is running: cancel it first")
    with lab.store.session() as session:
        session.execute(sql_delete(Metric).where(Metric.run_id == run_id))  # no foreign key there, see models
        session.execute(sql_delete(Run).where(Run.id == run_id))  # checkpoints and videos cascade
    run_folder = (lab.settings.data_dir / run.out_dir).resolve()
    if run.out_dir and run_folder.is_relative_to((lab.settings.data_dir / "runs").resolve()):
        shutil.rmtree(run_folder, ignore_errors=True)


def set_tags(run_id: int, tags: Sequence[str]) -> None:
    _update_run(run_id, tags=list(dict.fromkeys(str(tag) for tag in tags)))


def set_notes(run_id: int, notes: str) -> None:
    _update_run(run_id, notes=notes)


def reap_stale() -> list[int]:
    """Mark runs whose heartbeat went stale as crashed (queries already report them so); returns their ids."""
    lab = _current()
    return lifecycle.reap_stale(lab.store, lab.settings.stale_after_seconds)


# ---- queries ----------------------------------------------------------------------------------------------
def list_runs(status: str | None = None, sweep_id: int | None = None, tag: str | None = None) -> list[RunInfo]:
    """Newest first. A running run whose heartbeat is stale is reported (and filtered) as crashed."""
    return queries.list_runs(_current().store, status=status, sweep_id=sweep_id, tag=tag)


def get_run(run_id: int) -> RunInfo | None:
    return queries.get_run(_current().store, run_id)


def run_events(run_id: int) -> list[RunEvent]:
    """The run's status history, oldest first: every status change, re-queue, resume and attempt, with why."""
    return queries.run_events(_current().store, run_id)


def metric_keys(run_ids: Sequence[int]) -> list[str]:
    return queries.metric_keys(_current().store, run_ids)


def metrics(
    run_ids: Sequence[int], keys: Sequence[str], min_step: int | None = None, with_wall_time: bool = False
) -> dict[int, dict[str, MetricSeries]]:
    """run_id -> key -> MetricSeries(steps, values[, wall_times]) as numpy arrays in step order. Pass
    `min_step` to fetch only points a live chart does not have; wall times only when asked (they cost a third
    more to read)."""
    return queries.metrics(_current().store, run_ids, keys, min_step=min_step, with_wall_time=with_wall_time)


def latest_metrics(run_ids: Sequence[int], keys: Sequence[str]) -> dict[int, dict[str, tuple[int, float]]]:
    return queries.latest_metrics(_current().store, run_ids, keys)


def checkpoints(run_id: int) -> list[CheckpointInfo]:
    return queries.checkpoints(_current().store, run_id)


def videos(run_id: int, step: int | None = None) -> list[VideoInfo]:
    return queries.videos(_current().store, run_id, step)


def list_sweeps() -> list[SweepInfo]:
    return queries.list_sweeps(_current().store)


def artifact_path(relative: str) -> Path:
    """The absolute path of a stored artifact path (checkpoint, video, run folder); refuses paths that would
    leave the data directory."""
    data_dir = _current().settings.data_dir.resolve()
    path = (data_dir / relative).resolve()
    if not path.is_relative_to(data_dir):
        raise ValueError(f"artifact path outside the data directory: {relative}")
    return path


# ---- helpers ----------------------------------------------------------------------------------------------
def _as_dict(config_or_dict: RunConfig | dict[str, Any]) -> dict[str, Any]:
    return config_or_dict.to_dict() if isinstance(config_or_dict, RunConfig) else dict(config_or_dict)


def _validated(config_or_dict: RunConfig | dict[str, Any]) -> RunConfig:
    config = RunConfig.from_dict(_as_dict(config_or_dict)).validate()
    _check_inputs_exist(config, _current().settings.data_dir)
    return config


def _check_inputs_exist(config: RunConfig, data_dir: Path) -> None:
    """Refuse at launch a checkpoint or demo folder that is not there (workers share the data directory)."""
    for field_name in INPUT_PATH_FIELDS:
        value = getattr(config, field_name)
        if not value:
            continue
        path = Path(value) if Path(value).is_absolute() else data_dir / value
        if not path.exists():
            raise ConfigError(field_name, f"not found: {path} (relative paths are read from the data directory)")
        if field_name != "demos" and not ((path / "meta.json").is_file() or (path / "config.json").is_file()):
            raise ConfigError(
                field_name,
                f"{path} is neither an OPD checkpoint (meta.json) nor a transformers model directory (config.json)",
            )


def _check_grid(grid: dict[str, list]) -> list[str]:
    known = {f.name for f in fields(RunConfig)}
    for field_name, values in grid.items():
        if field_name not in known:
            raise ConfigError(field_name, "unknown field")
        if field_name == "out_dir":
            raise ConfigError(field_name, "is chosen by the lab (runs/<id>); it cannot be swept")
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(field_name, f"a sweep needs a non-empty list of values, got {values!r}")
    return list(grid)


def _get(run_id: int) -> RunInfo:
    run = get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def _update_run(run_id: int, **values: Any) -> None:
    with _current().store.session() as session:
        if not session.execute(update(Run).where(Run.id == run_id).values(**values)).rowcount:
            raise RunNotFound(run_id)


def _send(lab: _Lab, run_id: int, attempt: int, queue: str) -> None:
    """Publish the run's message. A resumed run whose message is refused is marked failed with the reason
    (`opd resume` again once the broker is back); a new run is removed by its caller."""
    try:
        lab.celery.send_task(RUN_TASK, args=[run_id, attempt], queue=queue, routing_key=queue)
    except Exception as exc:  # noqa: BLE001 - kombu raises many types for "the broker is not there"
        reason = (
            f"could not queue run {run_id}: broker unavailable "
            f"({describe_url(lab.settings.broker_url) if lab.settings.broker_url else 'filesystem'}): {exc}"
        )
        if attempt > 1:
            lifecycle.mark_unqueued(lab.store, run_id, attempt, reason)
        raise QueueUnavailable(reason) from exc


def _forget_unsent(lab: _Lab, run_ids: list[int], sweep_id: int | None = None) -> None:
    """Remove runs whose message never reached the broker (and their sweep when none of its runs did)."""
    with lab.store.session() as session:
        session.execute(sql_delete(Run).where(Run.id.in_(run_ids), Run.status == "queued"))
        if sweep_id is not None:
            session.execute(sql_delete(Sweep).where(Sweep.id == sweep_id))


# ---- the action-distribution inspector (worker.inspection) ---------------------------------------------------


def inspector_teachers(run_id: int) -> list[TeacherChoice]:
    """The teachers a run's rollouts can be inspected against, the default first (the run's own teacher, else the
    shipped teacher of its suite): then the other shipped teachers for its env and the final checkpoint of every
    other finished run on that env."""
    from worker import inspection

    run = _get(run_id)
    finished = list_runs(status="finished")
    choices = inspection.teacher_choices(run, finished, lambda other: (checkpoints(other) or [None])[-1])
    default = inspection.default_teacher(run, choices)
    return [default, *(choice for choice in choices if choice != default)] if default else choices


def inspect_actions(run_id: int, step: int, task: str, frame: int, teacher: str | None = None) -> ActionInspection:
    """Student and teacher distributions over the 256 bins of every action dimension at frame `frame` of the
    episode the evaluation at `step` filmed for `task`, replayed from the run's checkpoint at `step`.

    `teacher`: a checkpoint folder (relative to the data directory or absolute); None takes the run's own
    teacher, else the shipped teacher of its suite. Raises RunNotFound, or ValueError naming what is missing (no
    checkpoint or video at that step, a frame out of range, a teacher that is not a checkpoint). The replay and
    the teacher's labels are cached per (run, step, task, teacher): later frames cost milliseconds."""
    from opd_core.errors import OpdError
    from worker import inspection

    run = _get(run_id)
    saved = {c.step: c for c in checkpoints(run_id)}
    if step not in saved:
        raise ValueError(f"run {run_id} has no checkpoint at step {step} (steps: {sorted(saved) or 'none'})")
    filmed = [v for v in videos(run_id, step) if v.task == task]
    if not filmed:
        raise ValueError(f"run {run_id} filmed no episode of task {task!r} at step {step}")
    choices = inspector_teachers(run_id)
    if teacher is None:
        chosen = inspection.default_teacher(run, choices)
        if chosen is None:
            raise ValueError(f"run {run_id} has no teacher and none is shipped for its env: pick a checkpoint")
    else:
        chosen = next((c for c in choices if c.path == teacher), None) or TeacherChoice(teacher, teacher, "path")
    teacher_path = Path(chosen.path) if Path(chosen.path).is_absolute() else artifact_path(chosen.path)
    if not (teacher_path / "meta.json").is_file() and not (teacher_path / "config.json").is_file():
        raise ValueError(f"teacher {chosen.path} is not a checkpoint folder ({teacher_path})")
    try:
        return inspection.inspect_rollout(
            run,
            artifact_path(saved[step].path),
            filmed[0],
            artifact_path(filmed[0].path),
            int(frame),
            chosen,
            teacher_path,
        )
    except OpdError as exc:  # an incompatible teacher, a frame out of range, a checkpoint that does not load
        raise ValueError(str(exc)) from exc
