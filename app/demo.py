"""The newcomer's first run: the quick reproduction preset, and where its teacher and student come from.

The preset is `opd reproduce --quick` (opd_core.study.presets.QUICK) expressed as a sweep for the worker queue:
the OPD recipe of configs/opd_object_reverse_kl.yaml at the quick sizes (20 steps of B=4 x G=8, an evaluation
of 5 initial states every 5 steps), once per distillation objective, plus the GRPO baseline on the same batch:
five small runs whose curves appear within minutes. (The study module is not imported: importing it loads the
whole training stack into the dashboard process.)

It needs a teacher and a 1-demo student on the object suite: the lab's own (finished sft runs in the store), or
checkpoints found on disk: the shipped ones (assets/tabletop, found the way the study finds them) and the `runs/`
or `checkpoints/` folder that `opd train configs/teacher_object.yaml` and `configs/student_object_1demo.yaml`
write in the folder the dashboard was started from. A checkpoint's role is read from its meta.json run config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.checkpoints import shipped_root
from opd_core.config import ConfigError, RunConfig

DEMO_SUITE = "object"
QUICK_SIZES = {
    "steps": 20,
    "batch_tasks": 4,
    "group_size": 8,
    "eval_every": 5,
    "save_every": 5,
    "eval_init_states": 5,
    "videos_per_eval": 1,
}
"""opd_core.study.presets.QUICK's sizes (plus one video per evaluation, for the Videos page)."""
OBJECTIVES = ("reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce")
CHECKPOINT_DIRS = ("checkpoints", "runs")
"""Folders (of the working directory) searched for checkpoints besides the shipped ones, unless
OPD_DEMO_CHECKPOINTS names others (os.pathsep-separated)."""


@dataclass(frozen=True)
class DemoCheckpoints:
    teacher: str
    student: str


def recipe() -> dict[str, Any]:
    """The OPD recipe (learning rate, updates per step, minibatch, unseen tasks) the study uses."""
    from opd_core.study.recipes import load_recipe  # the study's own lookup of configs/

    try:
        return load_recipe("opd", DEMO_SUITE).to_dict()
    except ConfigError:  # an install without configs/: the config defaults are the recipe
        return RunConfig(suite=DEMO_SUITE).to_dict()


def quick_preset(checkpoints: DemoCheckpoints) -> list[tuple[dict[str, Any], dict]]:
    """(base config, grid) pairs of one sweep: the distillation objectives, then GRPO on the same batch."""
    base = {
        **recipe(),
        **QUICK_SIZES,
        "name": "quick",
        "pipeline": "opd",
        "suite": DEMO_SUITE,
        "teacher_checkpoint": checkpoints.teacher,
        "student_checkpoint": checkpoints.student,
    }
    return [(base, {"objective": list(OBJECTIVES)}), ({**base, "name": "quick grpo", "pipeline": "grpo"}, {})]


def role_of(run_config: Mapping[str, Any], suite: str = DEMO_SUITE) -> str | None:
    """'teacher' for an sft run on the suite with several demos per task, 'student' for a 1-demo one."""
    if run_config.get("pipeline") != "sft" or run_config.get("suite") != suite:
        return None
    return "student" if int(run_config.get("num_demos", 0)) == 1 else "teacher"


def from_store(lab: Any, suite: str = DEMO_SUITE) -> dict[str, str]:
    """Role -> final checkpoint path of the newest finished sft run in that role."""
    found: dict[str, str] = {}
    for run in lab.list_runs(status="finished"):  # newest first
        role = role_of(run.config, suite)
        if role is None or role in found:
            continue
        saved = lab.checkpoints(run.id)
        if saved:
            found[role] = str(lab.artifact_path(saved[-1].path))
    return found


def on_disk(roots: Iterable[Path] | None = None, suite: str = DEMO_SUITE) -> dict[str, str]:
    """Role -> a checkpoint folder found under the roots (the highest step per role)."""
    best: dict[str, tuple[int, str]] = {}
    for root in roots if roots is not None else default_roots():
        if not root.is_dir():
            continue
        for meta in sorted(root.rglob("meta.json")):
            try:
                data = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            role = role_of(data.get("run_config") or {}, suite)
            step = int(data.get("step", 0))
            if role is not None and (role not in best or step > best[role][0]):
                best[role] = (step, str(meta.parent))
    return {role: path for role, (_, path) in best.items()}


def default_roots() -> list[Path]:
    named = [Path(p) for p in os.environ.get("OPD_DEMO_CHECKPOINTS", "").split(os.pathsep) if p]
    if named:
        return named
    shipped = shipped_root()
    return [*([shipped] if shipped is not None else []), *(Path.cwd() / folder for folder in CHECKPOINT_DIRS)]


def describe_roots() -> str:
    """The folders searched, for the page's message."""
    return ", ".join(str(root) for root in default_roots())


def find_checkpoints(lab: Any, roots: Iterable[Path] | None = None) -> DemoCheckpoints | None:
    """The lab's own teacher and student when it has them, else ones on disk; None when either is missing."""
    found = {**on_disk(roots), **from_store(lab)}
    if "teacher" in found and "student" in found:
        return DemoCheckpoints(found["teacher"], found["student"])
    return None


def launch_quick(lab: Any, checkpoints: DemoCheckpoints) -> list[int]:
    """Queue the quick preset as one sweep; returns the run ids."""
    (base, grid), (grpo, _) = quick_preset(checkpoints)
    sweep_id, run_ids = lab.launch_sweep(base, grid, "quick reproduction")
    return [*run_ids, lab.launch(grpo, sweep_id=sweep_id)]
