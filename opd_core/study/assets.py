"""The study's fixed starting points, made once and cached in DIR/assets (or found in an `--assets` folder).

  demos/pretrain, demos/<suite>   expert demonstrations (opd_core.demos.generate_demos, DART noise 0.3)
  base                            the pre-trained base: sft on the pretrain suite (configs/pretrain_base.yaml)
  <suite>/teacher                 base + 50-demo sft on the suite              (configs/teacher_<suite>.yaml)
  <suite>/student                 base + 1-demo sft on the suite               (configs/student_<suite>_1demo.yaml)
The twin env (preset.env) has its own chain: configs/twin_{pretrain_base,teacher,student}.yaml (assets/twin).

Each asset is an ordinary run folder made by `train()` with the YAML recipe (paths overridden), so the study and
`opd train` share recipes; its last checkpoint is the asset. An `--assets` folder may hold finished run folders or
bare checkpoint folders, named by role (base, <suite>/teacher, <suite>/student, or teacher / student) or as the
configs name them (pretrain_base, teacher_<suite>, student_<suite>_1demo), so `--assets runs` reuses the chain
trained by hand with `opd train`. Demos are looked for in `<assets>/demos/<suite>` before being generated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from opd_core.checkpoint import META, latest_checkpoint, read_meta
from opd_core.config import RunConfig
from opd_core.data import task_file_name
from opd_core.registry import task_catalog
from opd_core.study.jobs import StudyError, execute, is_finished
from opd_core.study.presets import StudyPreset
from opd_core.study.recipes import load_recipe

FOUND_NAMES = {
    "base": ("base", "pretrain_base", "{env}_pretrain_base"),
    "teacher": ("{suite}/teacher", "teacher_{suite}", "{env}_teacher", "teacher"),
    "student": ("{suite}/student", "student_{suite}_1demo", "{env}_student", "student"),
}
"""Where an --assets folder may hold each role: a finished run folder or a checkpoint folder."""

DEMO_NOISE = 0.3
"""DART execution noise of generated demos (the `opd demos` default)."""


@dataclass
class Asset:
    role: str
    path: Path
    """The checkpoint folder."""
    source: str
    """built (by this study, now or earlier) | found (in the --assets folder)"""
    run_config: dict = field(default_factory=dict)

    def describe(self) -> dict:
        rc = self.run_config
        return {
            "role": self.role,
            "checkpoint": str(self.path),
            "source": self.source,
            "suite": rc.get("suite"),
            "steps": rc.get("steps"),
            "num_demos": rc.get("num_demos"),
            "lr": rc.get("lr"),
            "name": rc.get("name"),
        }


@dataclass
class SuiteAssets:
    suite: str
    base: Asset
    teacher: Asset
    student: Asset
    base_tasks: list[str]
    """The tasks the base was pre-trained on (retention is measured on a few of them)."""
    sft_recipe: RunConfig
    """The teacher's recipe: the offline-SFT baseline trains with it (from the student)."""

    def describe(self) -> dict:
        return {role: getattr(self, role).describe() for role in ("base", "teacher", "student")}


class AssetStore:
    """Finds or builds assets under `root` (DIR/assets); `run_job(config, label)` runs a RunConfig."""

    def __init__(
        self,
        root: Path,
        preset: StudyPreset,
        found_in: Path | None,
        run_job: Callable[[RunConfig, str], Path] | None = None,
        progress: bool = False,
        log: Callable[[str], None] = lambda message: None,
    ):
        self.root = Path(root)
        self.preset = preset
        self.found_in = Path(found_in) if found_in else None
        self.progress = progress
        self.log = log
        self.run_job = run_job or (lambda config, label: execute(config, progress=progress)[0])
        self._base: Asset | None = None
        self.env = preset.env
        self.catalog = task_catalog(preset.env)
        if self.found_in is not None and not self.found_in.is_dir():
            raise StudyError(f"--assets folder not found: {self.found_in}")

    # ------------------------------------------------------------------ public
    def suite(self, suite: str, seen: list[str]) -> SuiteAssets:
        """Base, teacher and 1-demo student for `suite` (seen tasks `seen`), found or built (once)."""
        base = self.base()
        teacher_recipe = self._recipe("teacher", suite, seen, base.path)
        teacher = self._find("teacher", suite) or self._build(teacher_recipe, "teacher")
        student = self._find("student", suite) or self._build(
            self._recipe("student", suite, seen, base.path), "student"
        )
        return SuiteAssets(suite, base, teacher, student, self._trained_tasks(base.run_config), teacher_recipe)

    def base(self) -> Asset:
        """The pre-trained base. An --assets folder must hold it: a folder where nothing is found is a mistake,
        and building the base silently would cost far more than any preset's budget."""
        if self._base is None:
            found = self._find("base", "pretrain")
            if found is None and self.found_in is not None:
                raise StudyError(
                    f"no finished base checkpoint in --assets {self.found_in} (looked for "
                    f"{', '.join(str(self.found_in / n.format(env=self.env)) for n in FOUND_NAMES['base'])})"
                )
            self._base = found or self._build(self._recipe("base", "pretrain", [], None), "base")
        return self._base

    def demos(self, suite: str, tasks: list[str], num: int) -> Path:
        """A folder with at least `num` demos of every task: the --assets one if complete, else DIR/assets/demos."""
        if self.found_in is not None and _demos_complete(self.found_in / "demos" / suite, tasks, num):
            return self.found_in / "demos" / suite
        folder = self.root / "demos" / suite
        missing = [task for task in tasks if _demo_count(folder / task_file_name(task)) < num]
        if missing:
            from opd_core.demos import generate_demos

            bar = _bar(self.progress, len(missing) * num, f"demos {suite}")
            try:
                generate_demos(
                    missing,
                    num,
                    folder,
                    noise=DEMO_NOISE,
                    seed=0,
                    progress=bar.update if bar is not None else None,
                    env=self.env,
                )
            finally:
                if bar is not None:
                    bar.close()
        return folder

    # ------------------------------------------------------------------ recipes
    def suite_demo_count(self, suite: str) -> int:
        """Demos per task of the suite's demo set: the teacher recipe's (50); the student reads the first ones."""
        return load_recipe("teacher", suite, env=self.env).replace(**self._overrides("teacher")).num_demos

    def _overrides(self, role: str) -> dict:
        return {**self.preset.common_overrides, **self.preset.asset_overrides.get(role, {})}

    def _recipe(self, role: str, suite: str, seen: list[str], base: Path | None) -> RunConfig:
        """The role's YAML recipe with the study's paths (and the preset's overrides) filled in."""
        if role == "base":
            recipe = load_recipe("base", "pretrain", env=self.env)
            count = self.preset.pretrain_tasks
            paths = {
                "tasks": self.catalog.suite_tasks(recipe.suite)[:count] if count else [],
                "demos": str(self.root / "demos" / recipe.suite),
                "out_dir": str(self.root / "base"),
            }
        else:
            recipe = load_recipe(role, suite, env=self.env)
            paths = {
                "tasks": seen,
                "student_checkpoint": str(base),
                "demos": str(self.root / "demos" / suite),
                "out_dir": str(self.root / suite / role),
            }
        return recipe.replace(**{**paths, "env": self.env, **self._overrides(role)})

    def _build(self, recipe: RunConfig, role: str) -> Asset:
        if not is_finished(recipe):
            wanted = recipe.num_demos
            if role != "base":  # the suite's one demo set: the student reads the first episode of each file
                wanted = max(wanted, self.suite_demo_count(recipe.suite))
            folder = self.demos(recipe.suite, self._trained_tasks(recipe.to_dict()), wanted)
            recipe = recipe.replace(demos=str(folder))
        label = f"asset {role}" + ("" if role == "base" else f" ({recipe.suite})")
        if not is_finished(recipe):
            where = f"not found in {self.found_in}; " if self.found_in is not None else ""
            self.log(f"[study] {label}: {where}training it ({recipe.name}, {recipe.steps} steps) into {recipe.out_dir}")
        checkpoint = Path(self.run_job(recipe, label))
        return Asset(role, checkpoint, "built", read_meta(checkpoint).get("run_config", {}))

    def _trained_tasks(self, run_config: dict) -> list[str]:
        return list(run_config.get("tasks") or []) or self.catalog.suite_tasks(run_config.get("suite") or "pretrain")

    # ------------------------------------------------------------------ --assets lookup
    def _find(self, role: str, suite: str) -> Asset | None:
        if self.found_in is None:
            return None
        for name in FOUND_NAMES[role]:
            name = name.format(suite=suite, env=self.env)
            checkpoint = _checkpoint_in(self.found_in / name)
            if checkpoint is None:
                continue
            meta = read_meta(checkpoint)
            run_config = meta.get("run_config") or {}
            if role != "base" and run_config.get("suite") not in (None, suite):
                continue  # a teacher or student of another suite
            if run_config.get("env", "tabletop") != self.env and run_config:
                continue  # a checkpoint of another simulator
            _require_finished(checkpoint, meta)
            return Asset(role, checkpoint, "found", run_config)
        return None


def _checkpoint_in(folder: Path) -> Path | None:
    if (folder / META).is_file():
        return folder
    if folder.is_dir():
        return latest_checkpoint(folder)
    return None


def _require_finished(checkpoint: Path, meta: dict) -> None:
    run_config = meta.get("run_config") or {}
    if not run_config:
        return  # a bare checkpoint: taken as final
    total = int(run_config.get("steps", 0)) + (
        int(run_config.get("grpo_steps", 0)) if run_config.get("pipeline") == "opd_then_grpo" else 0
    )
    if meta.get("step", total) < total:
        raise StudyError(
            f"{checkpoint} is not a finished run (step {meta.get('step')} of {total}); "
            f"finish it (opd train --resume) or leave it out of --assets"
        )


def _demo_count(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with h5py.File(path, "r") as handle:
            return sum(1 for name in handle.get("data", {}) if name.startswith("demo_"))
    except OSError:
        return 0


def _demos_complete(folder: Path, tasks: list[str], num: int) -> bool:
    return folder.is_dir() and all(_demo_count(folder / task_file_name(task)) >= num for task in tasks)


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="episode", dynamic_ncols=True, leave=False)
