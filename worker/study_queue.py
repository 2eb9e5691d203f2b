"""`opd reproduce --queue`: the study's runs executed by the lab's workers instead of in this process.

Every run of the study is sent to the store and broker through the worker API, one sweep per suite and method
(seed is the swept field), so that any number of `opd worker` processes on machines sharing the store and data
directory execute them, and they show on the dashboard like any sweep. This process prepares the assets and the
reference rows (in the study folder, as the local mode does), waits for the runs, and builds the summary, report
and plots from the store's metrics once they end.

DIR/queue.json is the study's ledger: which stored run is which study run ("<suite>/<method>_seed<k>" -> run id).
Running the same command again continues: a finished run is not redone, a failed, cancelled or crashed one is
resumed from its newest checkpoint, a queued or running one is waited for, and a run missing from the store (or
from the ledger) is sent. Figure 2's extensions continue a finished run to a longer length (api.extend), round by
round as the local mode does. A stored run made with other settings than the study asks for is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opd_core.config import RunConfig
from opd_core.study.analysis import run_from_rows
from opd_core.study.handoff import HANDOFF
from opd_core.study.jobs import LENGTH_FIELDS, PATH_FIELDS, StudyError
from opd_core.study.plan import RunSpec, TaskGroups
from worker import api
from worker.store import describe_url

LEDGER = "queue.json"
STUDY_TAG, METHOD_TAG, ROW_STEP_TAG = "study:", "method:", "table2-step:"
ENDED = ("finished", "failed", "cancelled", "crashed")
IGNORED_FIELDS = (*PATH_FIELDS, "name")
"""Left out of the same-settings check: the lab chooses out_dir, a sweep names its runs."""


class QueueExecutor:
    """runner.run_study's executor for the lab's queue (see the module docstring)."""

    def __init__(self, out: str | Path, *, poll_seconds: float = 2.0, log: Callable[[str], None] = print):
        self.out = Path(out).resolve()
        self.name = f"study {self.out.name}"
        self.poll_seconds = poll_seconds
        self.log = log
        self.ledger_path = self.out / LEDGER
        self.ledger: dict[str, int] = json.loads(self.ledger_path.read_text()) if self.ledger_path.is_file() else {}

    # ---- the executor interface -----------------------------------------------------------------------------
    def finished(self, spec: RunSpec, config: RunConfig) -> bool:
        run = self._stored(spec)
        return run is not None and run.status == "finished" and run.step >= config.total_steps

    def run_all(
        self,
        items: Sequence[tuple[RunSpec, RunConfig]],
        *,
        extendable: Callable[[RunConfig], bool] = lambda config: False,
        on_done: Callable[[RunConfig, bool], None] = lambda config, ran: None,
    ) -> int:
        """Send (or resume, or extend) every run not finished at its config's length, wait until all have ended;
        returns how many ran now. Raises StudyError naming every run that failed."""
        waiting: dict[int, tuple[RunSpec, RunConfig]] = {}
        new: dict[tuple[str, str], list[tuple[RunSpec, RunConfig]]] = {}
        for spec, config in items:
            run = self._stored(spec)
            if run is None:
                new.setdefault((spec.suite, spec.method), []).append((spec, config))
                continue
            _check_same_settings(run, config, extendable=extendable(config))
            if run.status == "finished" and run.step >= config.total_steps:
                on_done(config, False)
                continue
            if run.total_steps < config.total_steps:
                self.log(f"[study] run {run.id} ({self._key(spec)}): extended to {config.total_steps} steps")
                api.extend(run.id, **{k: getattr(config, k) for k in LENGTH_FIELDS})
            elif run.status in ("failed", "cancelled", "crashed"):
                self.log(f"[study] run {run.id} ({self._key(spec)}) was {run.status}: resumed")
                api.resume(run.id)
            waiting[run.id] = (spec, config)
        for (suite, method), group in new.items():
            waiting.update(self._send_sweep(suite, method, group))
        return self._wait(waiting, on_done)

    def read(self, spec: RunSpec, config: RunConfig, groups: TaskGroups) -> dict:
        """The run's metrics from the store, as analysis.read_run reads them from a folder."""
        run = self._stored(spec)
        if run is None:
            raise StudyError(f"{self._key(spec)} is not in the store (was it deleted?): run the study again")
        keys = api.metric_keys([run.id])
        rows: dict[int, dict] = {}
        for key, series in api.metrics([run.id], keys).get(run.id, {}).items():
            for step, value in zip(series.steps.tolist(), series.values.tolist()):
                rows.setdefault(int(step), {"step": int(step)})[key] = float(value)
        return run_from_rows([rows[step] for step in sorted(rows)], str(api.artifact_path(run.out_dir)), groups)

    def checkpoint(self, spec: RunSpec, config: RunConfig, step: int) -> Path:
        """The stored run's checkpoint at `step`, as a path the workers read (the data directory is shared)."""
        run = self._stored(spec)
        found = [c for c in api.checkpoints(run.id) if c.step == step] if run is not None else []
        if not found:
            raise StudyError(f"{self._key(spec)} has no stored checkpoint at step {step}")
        return api.artifact_path(found[0].path)

    def describe(self) -> dict:
        lab = api.settings()
        return {
            "mode": "queue",
            "where": f"the lab's queue (store {describe_url(lab.resolved_database_url)}, data {lab.data_dir})",
            "runs": dict(self.ledger),
        }

    # ---- helpers ----------------------------------------------------------------------------------------------
    @staticmethod
    def _key(spec: RunSpec) -> str:
        return f"{spec.suite}/{spec.run_id}"

    def _stored(self, spec: RunSpec):
        run_id = self.ledger.get(self._key(spec))
        return api.get_run(run_id) if run_id is not None else None

    def _send_sweep(self, suite: str, method: str, group: list[tuple[RunSpec, RunConfig]]) -> dict:
        """One sweep over the seeds of one suite and method (a later sweep takes seeds added since); each seed's
        run is named by its seed (distill then GRPO's also start from their own checkpoints and lengths)."""
        name = f"{self.name} {suite}/{method}"
        tags = study_tags(self.out.name, method, _row_step(group))
        configs = [config.replace(name=f"{name} seed={spec.seed}") for spec, config in group]
        sweep_id, run_ids = api.launch_group(configs, name, tags=tags)
        for (spec, _), run_id in zip(group, run_ids):
            self.ledger[self._key(spec)] = run_id
        self._save()
        self.log(f"[study] sweep {sweep_id} {name!r}: runs {', '.join(map(str, run_ids))} queued")
        return dict(zip(run_ids, group))

    def _save(self) -> None:
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.ledger_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.ledger, indent=1, sort_keys=True))
        temporary.replace(self.ledger_path)

    def _wait(self, waiting: dict[int, tuple[RunSpec, RunConfig]], on_done) -> int:
        """Until every run has ended: a crashed run the workers will resume (attempts left) is waited for."""
        pending, failures, ran, last_line = dict(waiting), [], 0, ""
        while pending:
            counts: dict[str, int] = {}
            for run_id, (spec, config) in list(pending.items()):
                run = api.get_run(run_id)
                if run is None:
                    failures.append(f"run {run_id} ({self._key(spec)}): deleted from the store")
                    del pending[run_id]
                    continue
                counts[run.status] = counts.get(run.status, 0) + 1
                if run.status not in ENDED or (run.status == "crashed" and _attempts_left(run)):
                    continue
                del pending[run_id]
                if run.status == "finished" and run.step >= config.total_steps:
                    ran += 1
                    on_done(config, True)
                else:
                    failures.append(f"run {run_id} ({self._key(spec)}): {run.status} at step {run.step}: {run.error}")
            line = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            if pending and line != last_line:
                self.log(f"[study] waiting for {len(pending)} run(s) on the queue: {line}")
                last_line = line
            if pending:
                time.sleep(self.poll_seconds)
        if failures:
            raise StudyError(
                f"{len(failures)} run(s) did not finish (run the study again to resume them):\n" + "\n".join(failures)
            )
        return ran


def study_tags(study: str, method: str, row_step: int | None) -> list[str]:
    """What the dashboard's Results page reads a study's Table 2 from: which study, which method, and the step
    whose checkpoint is the method's Table 2 cell (the nominal length; an extended run goes on past it; None: the
    run's last checkpoint)."""
    tags = [f"{STUDY_TAG}{study}", f"{METHOD_TAG}{method}"]
    return tags + ([f"{ROW_STEP_TAG}{row_step}"] if row_step is not None else [])


def _row_step(group: list[tuple[RunSpec, RunConfig]]) -> int | None:
    """The step of a method's Table 2 cell: its runs' nominal length; None for distill then GRPO, whose GRPO part
    (its own steps counted from the distilled checkpoint) ends at the study's length with its last checkpoint."""
    return group[0][1].total_steps if group[0][0].method != HANDOFF else None


def _attempts_left(run) -> bool:
    return run.attempt < int(run.config.get("max_attempts") or 1)


def _check_same_settings(run, config: RunConfig, *, extendable: bool) -> None:
    """Refuse a stored run made with other settings (the study's knobs changed since it was sent)."""
    skip = set(IGNORED_FIELDS) | (set(LENGTH_FIELDS) if extendable else set())
    wanted = {k: v for k, v in config.to_dict().items() if k not in skip}
    have = {k: v for k, v in RunConfig.from_dict(run.config).to_dict().items() if k not in skip}
    differ = sorted(k for k in wanted if wanted[k] != have.get(k))
    if not extendable and run.total_steps != config.total_steps:
        differ.append("total_steps")
    if differ:
        details = ", ".join(f"{k}: {have.get(k)!r} stored, {wanted.get(k)!r} wanted" for k in differ[:4])
        raise StudyError(
            f"stored run {run.id} was made with other settings ({details}); use another --out or remove {LEDGER}"
        )


def run_queued_study(
    out, preset, *, suites, assets=None, progress=True, poll_seconds: float = 2.0, finished_only=False, log=print
):
    """`opd reproduce --queue`: run_study with the runs on the lab's queue."""
    from opd_core.study import run_study

    executor = QueueExecutor(out, poll_seconds=poll_seconds, log=log)
    return run_study(
        out,
        preset,
        suites=suites,
        assets=assets,
        progress=progress,
        executor=executor,
        finished_only=finished_only,
        log=log,
    )
