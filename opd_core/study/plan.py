"""Which runs a study makes, and the RunConfig of each: every method from the same student with the same batch.

Run folders: DIR/runs/<suite>/<method>_seed<k>. Method keys are the METHODS names plus `reverse_kl_G<g>` for the
group-size ablation (reverse KL at a fixed number of trajectories per step, B = trajectories / G; an ablation
point whose batch equals the main batch is the main reverse-KL run itself and is not run twice) and
`<objective>_lr<lr>` for the objective ablation at another learning rate. The objective ablation of paper Fig. 4
adds `objective_<objective>` runs that train on the preset's one `objective_task`.

opd_then_grpo is a GRPO run from the same seed's reverse-KL checkpoint at the step where distillation plateaued
(handoff.switch_step): its config is made once the reverse-KL runs have ended, and its folder holds the GRPO part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opd_core.config import RunConfig
from opd_core.registry import task_catalog
from opd_core.study.presets import StudyPreset


@dataclass(frozen=True)
class TaskGroups:
    """What every evaluation measures: the seen tasks and two kinds of unseen tasks."""

    seen: list[str]
    """The suite's tasks: post-training trains on them."""
    held_out: list[str]
    """Held-out compositions (the `unseen` suite): never trained on by anyone."""
    retention: list[str]
    """A few of the base's pre-training tasks: how much of the pre-trained skill survives post-training."""

    @property
    def unseen(self) -> list[str]:
        return [*self.held_out, *self.retention]

    def to_dict(self) -> dict:
        return {"seen": self.seen, "held_out": self.held_out, "retention": self.retention}


OBJECTIVE_PREFIX = "objective_"
"""Method keys of the objective ablation's runs: objective_reverse_kl, objective_forward_kl, objective_hard_ce."""


def seen_tasks(preset: StudyPreset, suite: str) -> list[str]:
    tasks = task_catalog(preset.env).suite_tasks(suite)
    return tasks[: preset.seen_tasks] if preset.seen_tasks else tasks


def task_groups(preset: StudyPreset, suite: str, base_tasks: list[str]) -> TaskGroups:
    """Seen: the suite; held out: the first `held_out_tasks` unseen tasks; retention: evenly spaced base tasks."""
    catalog = task_catalog(preset.env)
    held_out = catalog.suite_tasks("unseen")[: preset.held_out_tasks]
    candidates = [t for t in base_tasks if t not in held_out and catalog.suite_of(t) != suite]
    count = min(preset.retention_tasks, len(candidates))
    retention = [candidates[i * len(candidates) // count] for i in range(count)] if count else []
    return TaskGroups(seen_tasks(preset, suite), held_out, retention)


@dataclass(frozen=True)
class RunSpec:
    suite: str
    method: str
    """Method key: a METHODS name, reverse_kl_G<g> or <objective>_lr<lr>."""
    seed: int
    batch_tasks: int
    group_size: int
    lr: float | None = None
    """The objective ablation's other learning rate; None: the recipe's."""
    tasks: tuple[str, ...] = ()
    """The tasks it trains on; empty: the suite's seen tasks (the objective ablation trains on one)."""
    steps: int = 0
    """On-policy steps; 0: the preset's."""

    @property
    def run_id(self) -> str:
        return f"{self.method}_seed{self.seed}"

    @property
    def base_method(self) -> str:
        if self.method.startswith(OBJECTIVE_PREFIX):
            return self.method[len(OBJECTIVE_PREFIX) :]
        if self.method.startswith("reverse_kl_G"):
            return "reverse_kl"
        return self.method.rsplit("_lr", 1)[0] if self.lr is not None else self.method

    def folder(self, out: Path) -> Path:
        return Path(out) / "runs" / self.suite / self.run_id


def lr_method(method: str, lr: float) -> str:
    """The method key of an objective at another learning rate: forward_kl at 1e-3 -> forward_kl_lr0.001."""
    return f"{method}_lr{lr:g}"


def ablation_methods(preset: StudyPreset) -> dict[int, str]:
    """G -> the method key whose runs give that ablation point."""
    keys = {}
    for g in preset.ablation_group_sizes:
        same_as_main = (
            g == preset.group_size
            and preset.ablation_trajectories == preset.batch_tasks * g
            and "reverse_kl" in preset.methods
        )
        keys[g] = "reverse_kl" if same_as_main else f"reverse_kl_G{g}"
    return keys


def plan_runs(preset: StudyPreset, suites: list[str], seeds: list[int]) -> list[RunSpec]:
    """Seed-major order, so that an interrupted study has whole seeds done first."""
    specs = []
    for seed in seeds:
        for suite in suites:
            for method in preset.methods:
                specs.append(RunSpec(suite, method, seed, preset.batch_tasks, preset.group_size))
            for g, key in ablation_methods(preset).items():
                if key != "reverse_kl":
                    specs.append(RunSpec(suite, key, seed, preset.ablation_trajectories // g, g))
            for lr in preset.objective_lrs:
                for method in preset.objective_lr_methods:
                    key = lr_method(method, lr)
                    specs.append(RunSpec(suite, key, seed, preset.batch_tasks, preset.group_size, lr=lr))
            specs.extend(objective_runs(preset, suite, seed))
    return specs


def objective_runs(preset: StudyPreset, suite: str, seed: int) -> list[RunSpec]:
    """The objective ablation's runs (Fig. 4) of one seed: each objective on the one task at the ablation batch."""
    if not preset.objective_task:
        return []
    g = preset.objective_group_size
    return [
        RunSpec(
            suite,
            f"{OBJECTIVE_PREFIX}{objective}",
            seed,
            preset.ablation_trajectories // g,
            g,
            tasks=(preset.objective_task,),
            steps=preset.objective_steps or preset.steps,
        )
        for objective in preset.objective_methods
    ]


def objective_groups(preset: StudyPreset) -> TaskGroups:
    """What the objective ablation's runs evaluate: its one task (its curves are the training rollouts')."""
    return TaskGroups([preset.objective_task], [], [])


def method_config(
    spec: RunSpec,
    preset: StudyPreset,
    opd_recipe: RunConfig,
    sft_recipe: RunConfig,
    groups: TaskGroups,
    student: Path,
    teacher: Path,
    demos: Path | None,
    out: Path,
    switch_step: int | None = None,
) -> RunConfig:
    """The RunConfig of one run: the OPD YAML recipe (the teacher's SFT recipe for `sft`) sized by the preset.
    opd_then_grpo: `student` is the distilled checkpoint at `switch_step`, and GRPO runs the remaining steps."""
    common = dict(
        name=f"study-{spec.suite}-{spec.run_id}",
        seed=spec.seed,
        env=preset.env,
        suite=spec.suite,
        tasks=list(spec.tasks) or groups.seen,
        unseen_tasks=[] if spec.tasks else groups.unseen,
        student_checkpoint=str(student),
        out_dir=str(spec.folder(out)),
        eval_init_states=preset.eval_init_states,
        videos_per_eval=preset.videos_per_eval,
        max_episode_steps=preset.max_episode_steps,
    )
    if spec.method == "sft":
        config = sft_recipe.replace(
            **common,
            pipeline="sft",
            demos=str(demos),
            steps=preset.sft_steps,
            eval_every=preset.sft_eval_every,
            save_every=preset.sft_eval_every,
        )
    else:
        config = opd_recipe.replace(
            **common,
            teacher_checkpoint=str(teacher),
            batch_tasks=spec.batch_tasks,
            group_size=spec.group_size,
            eval_every=preset.eval_every,
            save_every=preset.eval_every,
            **_pipeline(spec.base_method, preset, switch_step, spec.steps or preset.steps),
        )
    config = config.replace(**{**preset.common_overrides, **preset.method_overrides})
    if spec.lr is not None:
        config = config.replace(lr=spec.lr)
    return config.validate()


def _pipeline(method: str, preset: StudyPreset, switch_step: int | None, steps: int) -> dict:
    if method == "grpo":
        return {"pipeline": "grpo", "steps": steps, "grpo_steps": 0}
    if method == "opd_then_grpo":
        if switch_step is None or not 0 < switch_step < steps:
            raise ValueError(f"opd_then_grpo needs the step GRPO takes over at, in (0, {steps}): {switch_step}")
        return {"pipeline": "grpo", "steps": steps - switch_step, "grpo_steps": 0}
    return {"pipeline": "opd", "objective": method, "steps": steps, "grpo_steps": 0}
