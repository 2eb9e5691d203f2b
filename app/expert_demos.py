"""Demonstrations for the sft runs a launch asks for, made by the built-in simulator's scripted expert.

A fresh lab has no demo files, yet the forgetting study's offline-SFT arm (and any sft run) trains on some. The
Launch form's demos picker offers `GENERATE`: at launch, the suite's expert demos are written once into the data
directory (`demos/<suite>`, or `demos/<env>/<suite>` for another built-in simulator than the tabletop, as `opd
demos --env` would, DART noise 0.3 like the study's) and every sft run of the launch reads them from there; runs
that are not sft get no demos folder. Any built-in simulator with a scripted expert (the tabletop, the dual-arm
twin) can make them; an extra's environment cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

GENERATE = "<expert demos, made at launch>"
"""The demos picker's choice for 'make them': replaced by a real folder before anything is queued."""
DEMO_NOISE = 0.3
"""DART execution noise, as opd_core.study.assets makes the study's demos."""


def folder_for(suite: str, env: str = "tabletop") -> str:
    """Where a suite's generated demos live, relative to the data directory (how the worker reads it); the
    tabletop's keep their folder of before (other simulators reuse suite names such as pretrain)."""
    return f"demos/{suite}" if env == "tabletop" else f"demos/{env}/{suite}"


def can_generate(env: str) -> bool:
    """Whether the launch can make demos for `env`: a built-in simulator with a scripted expert."""
    from opd_core.demos import NOISY_DIMS

    return env in NOISY_DIMS


def needs_demos(configs: Sequence[Mapping[str, Any]]) -> bool:
    return any(config.get("pipeline") == "sft" for config in configs)


def resolve(
    base: dict[str, Any],
    arms: Sequence[Mapping[str, Any]],
    artifact_path: Callable[[str], Any],
    make: Callable[[list[str], int, Path], None] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """`base` with `GENERATE` replaced: by the suite's generated demo folder when an arm is sft (made now
    if it has too few demos per task), else by "" (no demos). Returns (base, a note for the researcher)."""
    if base.get("demos") != GENERATE:
        return base, None
    if not needs_demos(arms):
        return {**base, "demos": ""}, None
    env = str(base.get("env") or "tabletop")
    if not can_generate(env):
        return {**base, "demos": ""}, None  # the launch refuses: an sft run needs a demos folder (named field)
    from opd_core.registry import task_catalog

    catalog = task_catalog(env)
    suite = str(base.get("suite", ""))
    tasks = list(base.get("tasks") or []) or (catalog.suite_tasks(suite) if suite in catalog.suites else [])
    wanted = max(int(arm.get("num_demos", 0) or 0) for arm in arms if arm.get("pipeline") == "sft")
    relative = folder_for(suite, env)
    folder = Path(artifact_path(relative))
    missing = [task for task in tasks if demo_count(folder, task) < wanted]
    note = None
    if missing:
        (make or partial(generate, env=env))(missing, wanted, folder)
        note = (
            f"made {wanted} expert demos for each of {len(missing)} {suite} tasks in the data directory's "
            f"{relative} for the sft runs"
        )
    return {**base, "demos": relative}, note


def generate(tasks: list[str], num_demos: int, folder: Path, env: str = "tabletop") -> None:
    from opd_core.demos import generate_demos

    generate_demos(tasks, num_demos, folder, noise=DEMO_NOISE, seed=0, env=env)


def demo_count(folder: Path, task: str) -> int:
    """Episodes in a task's demo file (0 when there is none or it cannot be read)."""
    import h5py

    from opd_core.data import task_file_name

    path = Path(folder) / task_file_name(task)
    if not path.is_file():
        return 0
    try:
        with h5py.File(path, "r") as handle:
            return sum(1 for name in handle.get("data", {}) if name.startswith("demo_"))
    except OSError:
        return 0
