"""`run_study`: assets -> reference rows -> every method run -> summary.json, plots and report.md.

Everything a study makes lives under its folder:
  assets/                       demos, base, <suite>/teacher, <suite>/student, <suite>/reference.json
  runs/<suite>/<method>_seed<k> one ordinary run folder per run (config.yaml, metrics.jsonl, checkpoints/)
                                (objective_<objective>_seed<k>: the objective ablation of Fig. 4, on one task)
  summary.json, report.md, plots/*.png
Finished runs are skipped and interrupted ones resume, so running the same command again continues a study.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from opd_core.resources import RESOURCES_DIR
from opd_core.study import analysis, handoff, plots, report
from opd_core.study.assets import AssetStore
from opd_core.study.extend import DISTILLATION, extend_runs, plan_extension
from opd_core.study.jobs import LocalExecutor, StudyError
from opd_core.study.plan import (
    OBJECTIVE_PREFIX,
    RunSpec,
    ablation_methods,
    method_config,
    objective_groups,
    plan_runs,
    seen_tasks,
    task_groups,
)
from opd_core.study.presets import METHOD_LABELS, StudyPreset
from opd_core.study.recipes import load_recipe
from opd_core.study.references import ROLES, references


def run_study(
    out: str | Path,
    preset: StudyPreset,
    *,
    suites: list[str] = ("object",),
    assets: str | Path | None = None,
    progress: bool = True,
    jobs: int = 1,
    executor=None,
    finished_only: bool = False,
    log=print,
) -> dict:
    """Run (or continue) the study in `out`; returns the summary that is also written to out/summary.json.

    `jobs` runs that many method runs at once, each in its own process (the assets are made first, in order).
    `executor`: where the method runs execute and are read back from (default: jobs.LocalExecutor, here, into
    out/runs; the worker package's QueueExecutor sends them to the lab's workers and reads them from its store).
    `finished_only`: train nothing; the summary, report and plots cover the (seed, suite) units whose runs have
    all ended (an interim look at a study that spans sittings; Figure 2's extensions are not run).
    """
    started = time.perf_counter()
    out = Path(out).resolve()  # run configs name the assets by absolute path (workers elsewhere read them too)
    executor = executor or LocalExecutor(jobs=jobs, progress=progress, log=log)
    out.mkdir(parents=True, exist_ok=True)
    suites = list(suites)
    seeds = list(range(preset.seeds))
    if assets is None and preset.default_assets and (RESOURCES_DIR / preset.default_assets).is_dir():
        assets = RESOURCES_DIR / preset.default_assets
    store = AssetStore(out / "assets", preset, assets, progress=progress, log=log)

    prepared = {}
    for suite in suites:
        log(f"[study] {suite}: assets")
        seen = seen_tasks(preset, suite)
        suite_assets = store.suite(suite, seen)
        groups = task_groups(preset, suite, suite_assets.base_tasks)
        opd_recipe = load_recipe("opd", suite, env=preset.env)
        demos = store.demos(suite, seen, store.suite_demo_count(suite)) if "sft" in preset.methods else None
        log(f"[study] {suite}: reference evaluations (base, teacher, student)")
        checkpoints = {row: getattr(suite_assets, role).path for row, role in ROLES.items()}
        refs = references(
            out / "assets" / suite / "reference.json",
            checkpoints,
            groups,
            init_states=preset.eval_init_states,
            image_size=preset.common_overrides.get("image_size", opd_recipe.image_size),
            max_episode_steps=preset.max_episode_steps,
            env_name=preset.env,
        )
        prepared[suite] = (suite_assets, groups, opd_recipe, demos, refs)

    specs = plan_runs(preset, suites, seeds)
    handoffs = [spec for spec in specs if spec.method == handoff.HANDOFF]
    configs = {}

    def config_of(spec, student=None, switch=None):
        suite_assets, groups, opd_recipe, demos, _ = prepared[spec.suite]
        return method_config(
            spec,
            preset,
            opd_recipe,
            suite_assets.sft_recipe,
            groups,
            student or suite_assets.student.path,
            suite_assets.teacher.path,
            demos,
            out,
            switch_step=switch,
        )

    for spec in specs:
        if spec not in handoffs:  # made once the reverse-KL run it continues has ended
            configs[spec] = config_of(spec)
    reused = sum(executor.finished(spec, config) for spec, config in configs.items())
    where = out / "runs" if isinstance(executor, LocalExecutor) else executor.describe().get("where", "the queue")
    log(f"[study] {len(specs)} runs ({reused} of the first {len(configs)} already finished) in {where}")
    bar = _bar(progress and not finished_only, len(specs))

    ended = 0  # runs ended so far, reused ones included

    def advance(config, ran):
        nonlocal ended
        ended += 1
        name = Path(config.out_dir).name
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)
        elif ran:  # without a bar (a log file), a line a run: how far a study of days has got
            minutes = (time.perf_counter() - started) / 60
            run = f"{Path(config.out_dir).parent.name}/{name}"
            log(f"[study] {ended} of {len(specs)} runs ended: {run} ({minutes:.0f} min in)")

    extendable = {configs[spec].out_dir for spec in configs if spec.method in preset.extend_methods}
    ran_now, switches = 0, {}

    def switch_of(spec: RunSpec) -> int:
        """Where the distill-then-GRPO run `spec` takes over from its reverse-KL run (which has ended)."""
        distill = distillation_of(spec)
        switches[spec] = handoff.switch_step(preset, executor.read(distill, configs[distill], prepared[spec.suite][1]))
        return switches[spec][0]

    units_planned = len(_by_unit(specs))
    if finished_only:
        specs = _finished_units(
            specs, configs, executor, lambda spec: config_of(spec, *_handoff_start(spec, switch_of(spec), configs))
        )
        suites = [suite for suite in suites if any(spec.suite == suite for spec in specs)]
        seeds = sorted({spec.seed for spec in specs})
        log(f"[study] {len(_by_unit(specs))} of {units_planned} units finished: the report covers those")
    for unit in [] if finished_only else _units(specs, executor):
        ran_now += executor.run_all(
            [(spec, configs[spec]) for spec in unit if spec in configs],
            on_done=advance,
            extendable=lambda config: config.out_dir in extendable,
        )
        unit_handoffs = [spec for spec in unit if spec in handoffs]
        for spec in unit_handoffs:
            configs[spec] = _handoff_config(spec, switch_of, configs, config_of, executor)
        if unit_handoffs:
            log(
                "[study] distill then GRPO from the reverse-KL checkpoints at steps "
                + ", ".join(f"{s.suite}/seed{s.seed}: {switches[s][0]}" for s in unit_handoffs)
            )
            ran_now += executor.run_all([(spec, configs[spec]) for spec in unit_handoffs], on_done=advance)
    if bar is not None:
        bar.close()

    extensions = {}
    if preset.extend_methods and not finished_only:
        for suite in suites:
            suite_assets, groups, _, _, refs = prepared[suite]
            distill = [
                executor.read(s, configs[s], groups) for s in specs if s.suite == suite and s.method == DISTILLATION
            ]
            extensions[suite] = plan_extension(preset, refs["teacher"]["seen_success"], distill)
        extended_now = extend_runs(
            preset, specs, configs, extensions, {suite: prepared[suite][1] for suite in suites}, executor, log=log
        )
    else:
        extended_now = 0

    summary = {
        "study": "opd reproduce",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": preset.to_dict(),
        "suites": suites,
        "seeds": seeds,
        "wall_seconds": None,
        "runs_run_now": ran_now,
        "runs_reused": len(specs) - ran_now,
        "extension_rounds_run_now": extended_now,
        "finished_units": {"covered": len(_by_unit(specs)), "planned": units_planned} if finished_only else None,
        "execution": executor.describe(),
        "definitions": analysis.DEFINITIONS,
        "results": {},
    }
    every_run: list[dict] = []
    for suite in suites:
        suite_assets, groups, _, _, refs = prepared[suite]
        suite_specs = [s for s in specs if s.suite == suite]
        methods, objectives, handoff_result = {}, {}, None
        for key in dict.fromkeys(s.method for s in suite_specs):
            chosen = [s for s in suite_specs if s.method == key]
            is_objective = key.startswith(OBJECTIVE_PREFIX)
            read_groups = objective_groups(preset) if is_objective else groups
            runs = [executor.read(s, configs[s], read_groups) for s in chosen]
            every_run += runs
            config = configs[chosen[0]]
            if key == handoff.HANDOFF:
                distill = [executor.read(distillation_of(s), configs[distillation_of(s)], groups) for s in chosen]
                runs = [handoff.stitch(d, r, switches[s][0]) for s, d, r in zip(chosen, distill, runs)]
                handoff_result = handoff.summarize(preset, [switches[s] for s in chosen], distill, runs)
            methods[key] = analysis.summarize_method(
                key,
                chosen,
                runs,
                refs["teacher"],
                preset.steps if key == handoff.HANDOFF else config.total_steps,
                key if key == handoff.HANDOFF else config.pipeline,
                [switches[s][0] for s in chosen] if key == handoff.HANDOFF else None,
                fractions=preset.reach_fractions,
                extended=key in preset.extend_methods,
                lr=config.lr,
            )
            if key == "sft":
                methods[key]["label"] = f"offline SFT ({config.num_demos} demos/task)"
            if is_objective:
                objective = key[len(OBJECTIVE_PREFIX) :]
                objectives[objective] = {**methods.pop(key), "label": METHOD_LABELS.get(objective, objective)}
        result = {
            "tasks": groups.to_dict(),
            "assets": suite_assets.describe(),
            "reference": refs,
            "reference_labels": _reference_labels(suite_assets),
            "methods": methods,
            "ablation": {
                "trajectories": preset.ablation_trajectories,
                "group_sizes": {str(g): key for g, key in ablation_methods(preset).items()},
            },
        }
        result["distill_then_grpo"] = handoff_result
        extension = extensions.get(suite)
        result["extension"] = extension.to_dict() if extension is not None else None
        result["speedup"] = analysis.speedups(
            methods,
            preset.reach_fractions,
            preset.steps,
            others=tuple(m for m in ("grpo", "opd_then_grpo") if m in preset.extend_methods) or ("grpo",),
        )
        result["claims"] = analysis.claims(result)
        if objectives:
            figure_4 = analysis.objective_ablation(objectives)
            result["objective_ablation"] = {
                "task": preset.objective_task,
                "trajectories": preset.ablation_trajectories,
                "group_size": preset.objective_group_size,
                "batch_tasks": preset.ablation_trajectories // preset.objective_group_size,
                "methods": objectives,
                "figure_4": figure_4,
            }
            result["claims"] += analysis.objective_claims(figure_4, refs["teacher"].get("entropy"))
        summary["results"][suite] = result

    summary["compute"] = analysis.compute(every_run)
    made = plots.draw_all(summary, out / "plots")
    summary["plots"] = made
    summary["wall_seconds"] = time.perf_counter() - started
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
    (out / "report.md").write_text(report.render(summary, made))
    log(f"[study] done in {summary['wall_seconds']:.0f} s: {out / 'summary.json'}, {out / 'report.md'}")
    return summary


def _units(specs: list[RunSpec], executor) -> list[list[RunSpec]]:
    """The order runs execute in: one unit per seed and suite for an executor that asks for it (here, so that a
    study stopped part-way has whole units done), else every run at once (the queue's workers take them all)."""
    if not getattr(executor, "runs_by_unit", False):
        return [specs]
    return _by_unit(specs)


def _by_unit(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """The runs of each seed and suite, in plan order."""
    units: dict[tuple[int, str], list[RunSpec]] = {}
    for spec in specs:
        units.setdefault((spec.seed, spec.suite), []).append(spec)
    return list(units.values())


def _finished_units(specs: list[RunSpec], configs: dict, executor, handoff_config) -> list[RunSpec]:
    """The runs of the units whose every run has ended (a handoff run is judged once its reverse-KL run has)."""
    kept = []
    for unit in _by_unit(specs):
        if not all(executor.finished(spec, configs[spec]) for spec in unit if spec in configs):
            continue
        handoffs = [spec for spec in unit if spec not in configs]
        for spec in handoffs:
            configs[spec] = handoff_config(spec)
        if all(executor.finished(spec, configs[spec]) for spec in handoffs):
            kept += unit
    if not kept:
        raise StudyError("no seed of any suite has all its runs finished yet: nothing to report")
    return kept


def _handoff_start(spec: RunSpec, step: int, configs: dict) -> tuple[Path, int]:
    """The reverse-KL checkpoint a distill-then-GRPO run starts from, as its config names it."""
    return Path(configs[distillation_of(spec)].out_dir) / "checkpoints" / f"step_{step}", step


def _handoff_config(spec: RunSpec, switch_of: Callable[[RunSpec], int], configs: dict, config_of, executor):
    """The distill-then-GRPO run's config from the reverse-KL checkpoint at its switch step. A handoff run that has
    ended needs no checkpoint (its student's path is not compared), so a reverse-KL run kept without weights is not
    made again for it. One that is made again (`executor.checkpoint`) may, on another machine, have a curve other
    than the kept one: the switch is then read again from the run as it now is, so that the handoff and the
    reverse-KL metrics on disk agree."""
    step = switch_of(spec)
    config = config_of(spec, *_handoff_start(spec, step, configs))
    if executor.finished(spec, config):
        return config
    distill = distillation_of(spec)
    checkpoint = executor.checkpoint(distill, configs[distill], step)
    if (step_now := switch_of(spec)) != step:
        step, checkpoint = step_now, executor.checkpoint(distill, configs[distill], step_now)
    return config_of(spec, checkpoint, step)


def distillation_of(spec: RunSpec) -> RunSpec:
    """The reverse-KL run a distill-then-GRPO run continues (same suite and seed)."""
    return RunSpec(spec.suite, DISTILLATION, spec.seed, spec.batch_tasks, spec.group_size)


def _reference_labels(suite_assets) -> dict[str, str]:
    def demos(asset) -> str:
        n = asset.run_config.get("num_demos")
        return f" ({n}-demo SFT)" if n else ""

    tasks = len(suite_assets.base_tasks)
    return {
        "base": f"Pre-trained base ({tasks} tasks)",
        "teacher": "Teacher" + demos(suite_assets.teacher),
        "student_init": "Student init" + demos(suite_assets.student),
    }


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="study runs", unit="run", position=0, dynamic_ncols=True)
