"""The checkpoints a run can start from: the shipped ones and the lab's own, each with a readable name.

Shipped: the base, teacher and student checkpoints that come with the project (assets/tabletop, and the dual-arm
twin's in assets/twin), found through the study's own lookup (`shipped_roots`: its presets' default assets), so the
dashboard and `opd reproduce` start from the same files however the project is installed. The lab's own: the final
checkpoint of every finished run in the store.

A checkpoint's role is read from the run config its meta.json (or its run) recorded: an sft run on the pretrain
suite is a pre-trained base; an sft run named as a student or a teacher (the twin recipes: twin-student,
twin-teacher) is that; otherwise one with one demo per task a student, any other sft run a teacher; the final
checkpoint of a post-training run (opd, grpo, ...) is a trained student. A shipped checkpoint's folder
(<suite>/teacher, <suite>/student, base) names its role.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.run_groups import method_label

ROLE_OF_FIELD = {"student_checkpoint": "student", "teacher_checkpoint": "teacher"}
"""The role a checkpoint picker offers first (and takes as its default)."""


@dataclass(frozen=True)
class CheckpointChoice:
    path: str
    """Absolute checkpoint folder (what a config's checkpoint field holds)."""
    label: str
    """What the picker shows, most telling first (a narrow picker cuts the end): role and suite, where it comes
    from, its recorded seen-task success, its step."""
    role: str | None
    """base | teacher | student (a 1-demo sft student) | trained (a post-trained student) | None (unknown)"""
    suite: str
    source: str
    """shipped | lab"""
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The evaluation recorded with the checkpoint (seen_success, unseen_success, per_task); may be empty."""
    env: str = "tabletop"
    """The simulator it was trained on (a picker offers the form's env's first)."""


def role_of(run_config: Mapping[str, Any]) -> str | None:
    pipeline = run_config.get("pipeline")
    if not pipeline:
        return None
    if pipeline != "sft":
        return "trained"
    if run_config.get("suite") == "pretrain":
        return "base"
    words = set(re.split(r"[^a-z]+", str(run_config.get("name") or "").lower()))
    for role in ("student", "teacher"):
        if role in words:
            return role
    return "student" if int(run_config.get("num_demos", 0) or 0) == 1 else "teacher"


SHIPPED_ROLES = {"base": "base", "teacher": "teacher", "student": "student"}
"""A shipped checkpoint's folder name -> its role (the study's layout: base, <suite>/teacher, <suite>/student)."""


# ---- shipped checkpoints ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def shipped_root() -> Path | None:
    """The tabletop's folder of shipped checkpoints, as the study finds it for `opd reproduce` (its default
    --assets)."""
    from opd_core.study.presets import QUICK  # the study's lookup; importing the study loads torch (about 2 s)

    return _assets_folder(QUICK.default_assets)


@functools.lru_cache(maxsize=1)
def shipped_roots() -> tuple[Path, ...]:
    """Every simulator's folder of shipped checkpoints (the study presets' default --assets: tabletop, twin)."""
    from opd_core.study.presets import PRESETS

    folders = dict.fromkeys(p.default_assets for p in PRESETS.values() if p.default_assets)
    return tuple(root for root in map(_assets_folder, folders) if root is not None)


def _assets_folder(relative: str) -> Path | None:
    from opd_core.study.recipes import CONFIG_DIR

    root = (CONFIG_DIR.parent / relative).resolve() if relative else None
    return root if root is not None and root.is_dir() else None


def checkpoints_on_disk(roots: Iterable[Path]) -> list[CheckpointChoice]:
    """Every checkpoint folder (one holding a meta.json) under the roots, labelled from its meta.json."""
    found = []
    for root in roots:
        if not root or not Path(root).is_dir():
            continue
        for meta_path in sorted(Path(root).rglob("meta.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict) or "policy" not in meta:
                continue
            run_config = meta.get("run_config") or {}
            evaluation = (meta.get("extra") or {}).get("eval") or {}
            role = SHIPPED_ROLES.get(meta_path.parent.name) or role_of(run_config)
            suite = str(run_config.get("suite") or "")
            label = f"{describe(role, run_config)} · shipped{success_text(evaluation)} · step {meta.get('step', '?')}"
            env = str(run_config.get("env") or "tabletop")
            found.append(
                CheckpointChoice(str(meta_path.parent.resolve()), label, role, suite, "shipped", evaluation, env)
            )
    return found


def shipped_checkpoints() -> list[CheckpointChoice]:
    return checkpoints_on_disk(shipped_roots())


# ---- the lab's own ----------------------------------------------------------------------------------------
def lab_checkpoints(lab: Any) -> list[CheckpointChoice]:
    """The final checkpoint of every finished run, newest run first."""
    found = []
    for run in lab.list_runs(status="finished"):
        saved = lab.checkpoints(run.id)
        if not saved:
            continue
        last = saved[-1]
        evaluation = dict(last.summary or {})
        role = role_of(run.config)
        label = f"#{run.id} {run.name} · {describe(role, run.config)}{success_text(evaluation)} · step {last.step}"
        found.append(
            CheckpointChoice(
                str(lab.artifact_path(last.path)),
                label,
                role,
                str(run.config.get("suite") or ""),
                "lab",
                evaluation,
                str(run.config.get("env") or "tabletop"),
            )
        )
    return found


def checkpoint_choices(lab: Any, shipped: Sequence[CheckpointChoice] | None = None) -> list[CheckpointChoice]:
    """The lab's own checkpoints, then the shipped ones (a folder listed once)."""
    choices: dict[str, CheckpointChoice] = {}
    for choice in [*lab_checkpoints(lab), *(shipped_checkpoints() if shipped is None else shipped)]:
        choices.setdefault(choice.path, choice)
    return list(choices.values())


def ordered_for(
    choices: Sequence[CheckpointChoice], field_name: str, suite: str, env: str | None = None
) -> list[CheckpointChoice]:
    """The picker's order: the field's role on the form's suite (and env) first, then the rest of the suite, then
    the env's others, then everything else (stable otherwise)."""
    role = ROLE_OF_FIELD.get(field_name)

    def rank(choice: CheckpointChoice) -> int:
        same_env = env is None or choice.env == env
        if choice.role == role and choice.suite == suite and same_env:
            return 0
        if choice.suite == suite and same_env:
            return 1
        return 2 if same_env else 3

    return sorted(choices, key=rank)


def default_for(choices: Sequence[CheckpointChoice], field_name: str, suite: str, env: str | None = None) -> str:
    """The picker's default: the newest checkpoint in the field's role on the suite (and env) (the lab's own
    before the shipped one); "" (none) when there is none."""
    role = ROLE_OF_FIELD.get(field_name)
    return next((c.path for c in choices if c.role == role and c.suite == suite and (env is None or c.env == env)), "")


# ---- labels -----------------------------------------------------------------------------------------------
def describe(role: str | None, run_config: Mapping[str, Any]) -> str:
    suite = run_config.get("suite") or "?"
    env = run_config.get("env") or "tabletop"
    if role == "base":
        return "pre-trained base" if env == "tabletop" else f"{env} pre-trained base"
    if role == "teacher":
        return f"{suite} teacher"
    if role == "student":
        demos = run_config.get("num_demos")
        return f"{suite} {demos}-demo student" if demos else f"{suite} student"
    if role == "trained":
        return method_label(run_config)
    return "checkpoint"


def success_text(evaluation: Mapping[str, Any]) -> str:
    seen = evaluation.get("seen_success")
    if isinstance(seen, (int, float)) and not isinstance(seen, bool) and math.isfinite(seen):
        return f" · seen {100 * seen:.0f}%"
    return ""
