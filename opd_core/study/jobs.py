"""Run one RunConfig through `train()` into its out_dir, idempotently: finished runs are skipped, interrupted
runs resume from their newest checkpoint, and a folder made with other settings is refused (never mixed).

A finished run may be kept without its weights (a study kept in git, whose .gitignore leaves checkpoints out): its
checkpoints.jsonl still records the final checkpoint, so it counts as ended and is read from its metrics; when a
later run needs one of its checkpoints, the run is made again from scratch. On one machine a study run is
deterministic for its seed and makes the same weights; on another CPU, floating-point differences can change a sampled
action and so the whole curve: the run made again then replaces the kept one's metrics, and the log says so."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from opd_core.checkpoint import META, latest_checkpoint, read_meta
from opd_core.config import ConfigError, RunConfig
from opd_core.errors import OpdError
from opd_core.sinks import LocalDirSink, read_metrics

PATH_FIELDS = ("out_dir", "student_checkpoint", "teacher_checkpoint", "demos")
"""Fields left out of the same-settings check, so that a study folder (or its assets) can move."""


class StudyError(OpdError):
    """The study cannot go on (a stale run folder, an unfinished asset, a failed run)."""


def final_checkpoint(config: RunConfig) -> Path:
    return Path(config.out_dir) / "checkpoints" / f"step_{config.total_steps}"


def is_finished(config: RunConfig) -> bool:
    """Its final checkpoint is here (what an asset, whose weights are used, must be)."""
    return (final_checkpoint(config) / META).is_file()


def weights_left_out(config: RunConfig) -> bool:
    """A finished run kept without its checkpoints: no checkpoint folder is left, and checkpoints.jsonl records the
    final one."""
    out = Path(config.out_dir)
    if latest_checkpoint(out) is not None or not (out / "checkpoints.jsonl").is_file():
        return False
    rows = (json.loads(line) for line in (out / "checkpoints.jsonl").read_text().splitlines() if line.strip())
    return any(int(row["step"]) == config.total_steps for row in rows)


def has_ended(config: RunConfig) -> bool:
    """Finished: with its final checkpoint, or kept without its weights."""
    return is_finished(config) or weights_left_out(config)


def eval_curve(out: Path) -> list[tuple[int, float]]:
    """The run's greedy seen success per evaluated step, as its metrics.jsonl records it."""
    return [(row["step"], row["eval/seen_success"]) for row in read_metrics(out) if "eval/seen_success" in row]


def clear_run(out: Path) -> None:
    """Forget a run kept without weights, so that it runs again from scratch (its config.yaml stays)."""
    for name in LocalDirSink.FILES:
        (out / name).unlink(missing_ok=True)


def execute(config: RunConfig, *, progress: bool = False, extendable: bool = False) -> tuple[Path, bool]:
    """Make sure `config` has run to its last step; returns (final checkpoint, whether it ran now).

    `extendable`: the folder may hold the same run continued past `config`'s length (a study's extension), and
    `config` may continue it (resuming past the length it was started with)."""
    from opd_core.train import train

    config.validate()
    out = Path(config.out_dir)
    if has_ended(config):
        check_same_settings(config, out, extendable=extendable)
        return final_checkpoint(config), False
    resume = latest_checkpoint(out) is not None
    if resume:
        check_same_settings(config, out, extendable=extendable)
    else:
        for name in LocalDirSink.FILES:  # a run killed before its first checkpoint: start it clean
            (out / name).unlink(missing_ok=True)
    sink = LocalDirSink(out)
    try:
        result = train(config, sink, resume=resume, progress_bar=progress)
    finally:
        sink.close()
    if result.status != "finished" or not has_ended(config):
        raise StudyError(f"run {out} stopped at step {result.step} ({result.status})")
    return final_checkpoint(config), True


def execute_all(
    configs: Sequence[RunConfig],
    *,
    jobs: int = 1,
    progress: bool = False,
    on_done: Callable[[RunConfig, bool], None] = lambda config, ran: None,
    extendable: Callable[[RunConfig], bool] = lambda config: False,
) -> int:
    """Run every config to its last step, `jobs` at a time; returns how many ran now (the rest were finished).

    jobs=1 runs them in order in this process and stops at the first failure. With jobs > 1 each run gets its own
    process with cpu_count // jobs torch threads (OpenMP threads of concurrent runs fighting over the same cores
    are slower than one thread each); a failed run does not stop the others, and the study raises once all have
    ended, naming every failed run. Interrupting the study cancels the runs not yet started.
    """
    if jobs <= 1:
        ran_now = 0
        for config in configs:
            _, ran = execute(config, progress=progress, extendable=extendable(config))
            ran_now += ran
            on_done(config, ran)
        return ran_now
    threads = max(1, (os.cpu_count() or 1) // jobs)
    failures, ran_now = [], 0
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=_start_child, initargs=(threads,)
    )
    try:
        pending = {pool.submit(_execute_in_child, config, extendable(config)): config for config in configs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                config = pending.pop(future)
                try:
                    ran, error = future.result()
                except BrokenProcessPool as exc:  # a child killed (e.g. out of memory) breaks the whole pool
                    ran, error = False, f"its process died ({exc})"
                if error is not None:
                    failures.append(f"{config.out_dir}: {error}")
                    continue
                ran_now += ran
                on_done(config, ran)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise StudyError(f"{len(failures)} run(s) failed:\n" + "\n".join(failures))
    return ran_now


def _execute_in_child(config: RunConfig, extendable: bool) -> tuple[bool, str | None]:
    """(ran now, None) or (False, the error as text): whatever a run raises reaches the parent as a message."""
    try:
        _, ran = execute(config, extendable=extendable)
        return ran, None
    except Exception as exc:  # noqa: BLE001 - reported by the parent with the run's folder
        detail = "" if isinstance(exc, (OpdError, ConfigError)) else "\n" + traceback.format_exc(limit=-3)
        return False, f"{type(exc).__name__}: {exc}{detail}"


def _start_child(threads: int) -> None:
    """A run process's set-up: its torch threads, and a watch on the study's process, so that a study killed
    outright (SIGKILL, or SIGTERM to its process alone) does not leave its runs training on as orphans that
    write into the study folder behind the next invocation's back."""
    import torch

    torch.set_num_threads(threads)
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_when_orphaned(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # the run's folder is left unfinished: the next invocation makes it again


LENGTH_FIELDS = ("steps", "grpo_steps")
"""The fields an extension changes (opd_then_grpo extends its GRPO part)."""


def check_same_settings(config: RunConfig, out: Path, *, extendable: bool = False) -> None:
    """Refuse a folder made with other settings. `extendable`: its run length may differ from `config`'s (the run
    was, or is being, extended); every other field must agree."""
    saved = _saved_config(out)
    if saved is None:
        return
    wanted, have = _comparable(config.to_dict()), _comparable(saved)
    if extendable:
        for key in LENGTH_FIELDS:
            wanted.pop(key, None), have.pop(key, None)
    differ = sorted(key for key in wanted.keys() | have.keys() if wanted.get(key) != have.get(key))
    if differ:
        details = ", ".join(f"{k}: {have.get(k)!r} there, {wanted.get(k)!r} wanted" for k in differ[:4])
        raise StudyError(f"{out} was made with other settings ({details}); use another --out or remove it")


def _saved_config(out: Path) -> dict | None:
    if (out / "config.yaml").is_file():
        return RunConfig.load(out / "config.yaml").to_dict()
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None:
        return read_meta(checkpoint).get("run_config") or None
    return None


def _comparable(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in PATH_FIELDS}


class LocalExecutor:
    """Where a study's runs execute when no queue is asked for: here, `jobs` processes at a time, each run in its
    own folder under the study (DIR/runs/<suite>/<method>_seed<k>), read back from that folder's metrics.jsonl.

    The study talks to its executor only through `finished`, `run_all`, `read`, `checkpoint` and `describe`; the
    worker package gives another one (worker.study_queue.QueueExecutor) that sends the runs to the lab's store and
    broker."""

    runs_by_unit = True
    """Run a seed's runs of a suite, and the distill-then-GRPO runs that continue them, before the next seed's: a
    study stopped part-way has whole units done, and a handoff finds its reverse-KL checkpoint still there."""

    def __init__(self, *, jobs: int = 1, progress: bool = False, log: Callable[[str], None] = print):
        self.jobs = jobs
        self.progress = progress
        self.log = log

    def finished(self, spec, config: RunConfig) -> bool:
        return has_ended(config)

    def run_all(
        self,
        items: Sequence[tuple],
        *,
        extendable: Callable[[RunConfig], bool] = lambda config: False,
        on_done: Callable[[RunConfig, bool], None] = lambda config, ran: None,
    ) -> int:
        """Run every (spec, config) to its config's length; returns how many ran now."""
        return execute_all(
            [config for _, config in items],
            jobs=self.jobs,
            progress=self.progress and self.jobs == 1,
            on_done=on_done,
            extendable=extendable,
        )

    def read(self, spec, config: RunConfig, groups) -> dict:
        from opd_core.study.analysis import read_run

        return read_run(Path(config.out_dir), groups)

    def checkpoint(self, spec, config: RunConfig, step: int) -> Path:
        """The run's checkpoint at `step` (a later run starts from it)."""
        path = Path(config.out_dir) / "checkpoints" / f"step_{step}"
        if not (path / META).is_file() and weights_left_out(config):
            self.log(f"[study] {config.out_dir} was kept without its weights: making it again for step {step}")
            kept = eval_curve(Path(config.out_dir))
            clear_run(Path(config.out_dir))
            execute(config, progress=self.progress)
            if eval_curve(Path(config.out_dir)) != kept:
                self.log(
                    f"[study] {config.out_dir} made again differs from the kept run (another machine's floating "
                    "point): its new metrics replace the kept ones"
                )
        if not (path / META).is_file():
            raise StudyError(f"{config.out_dir} has no checkpoint at step {step}")
        return path

    def describe(self) -> dict:
        return {"mode": "local", "jobs": self.jobs}
