"""The Launch form, generated from `opd_core.config.RunConfig`: one widget spec per dataclass field.

A field's widget follows from its type and name (choices for the enumerated fields, a task picker for task
lists, a checkpoint picker for checkpoint paths, a demos picker for the demos folder), its help text is the
field's docstring, and its section is the `# --- section ---` comment above it in config.py, so a new config
field appears in the form by itself.
Validation is RunConfig's own: the ConfigError names the field, and the page shows the message next to it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from opd_core.config import (
    DATA_PARALLEL,
    ENVS,
    OBJECTIVES,
    PIPELINES,
    POLICY_KINDS,
    ConfigError,
    RunConfig,
    field_docs,
)
from opd_core.envs.base import TaskSuiteProvider
from opd_core.errors import EnvironmentUnavailable
from opd_core.registry import task_catalog

CHOICES = {
    "pipeline": PIPELINES,
    "objective": OBJECTIVES,
    "env": ENVS,
    "policy": POLICY_KINDS,
    "data_parallel": DATA_PARALLEL,
}
TASK_FIELDS = ("tasks", "unseen_tasks")
CHECKPOINT_FIELDS = ("student_checkpoint", "teacher_checkpoint")
DEMO_FIELDS = ("demos",)
HIDDEN_FIELDS = ("out_dir", "seed")
"""out_dir: the store names every run's folder itself (runs/<id> in the data directory); seed: the form asks
for a list of seeds instead (one run per seed)."""
LIVE_FIELDS = ("env", "suite")
"""Drawn outside the form so that the task pickers can follow them (a form only reports on submit)."""
UNSEEN_SUITE = "unseen"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    """choice | int | float | bool | text | tasks | checkpoint | demos"""
    default: Any
    help: str
    section: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


def field_specs() -> list[FieldSpec]:
    """Every visible RunConfig field in declaration order."""
    hints = get_type_hints(RunConfig)
    docs = field_docs()
    sections = field_sections()
    defaults = RunConfig()
    specs = []
    for item in dataclasses.fields(RunConfig):
        if item.name in HIDDEN_FIELDS:
            continue
        specs.append(
            FieldSpec(
                item.name,
                _kind(item.name, hints[item.name]),
                getattr(defaults, item.name),
                docs.get(item.name, ""),
                sections.get(item.name, "settings"),
                tuple(CHOICES.get(item.name, ())),
            )
        )
    return specs


def _kind(name: str, hint: Any) -> str:
    if name in CHOICES:
        return "choice"
    if name in TASK_FIELDS:
        return "tasks"
    if name in CHECKPOINT_FIELDS:
        return "checkpoint"
    if name in DEMO_FIELDS:
        return "demos"
    return {bool: "bool", int: "int", float: "float"}.get(hint, "text")


_SECTION = re.compile(r"#\s*---\s*(.+?)\s*---")
_FIELD = re.compile(r"^\s{4}(\w+)\s*:")


def field_sections() -> dict[str, str]:
    """Field -> the title of the `# --- title ---` comment above it in RunConfig's source."""
    sections, current = {}, "settings"
    for line in inspect.getsource(RunConfig).splitlines():
        if match := _SECTION.search(line):
            current = match.group(1)
        elif (match := _FIELD.match(line)) and not line.strip().startswith("def "):
            sections[match.group(1)] = current
    return sections


def catalog_of(env: str) -> TaskSuiteProvider | None:
    """The environment's task catalogue from the registry; None when it is an optional extra that is not
    installed (its suites are then typed by name)."""
    try:
        return task_catalog(env)
    except EnvironmentUnavailable:
        return None


def suite_choices(env: str) -> list[str]:
    """Suites offered for an environment, from its catalogue (the tabletop's, the dual-arm twin's, an installed
    extra's); none for an extra that is not installed."""
    catalog = catalog_of(env)
    return list(catalog.suites) if catalog is not None else []


def task_choices(env: str, suite: str, field_name: str) -> list[str]:
    """Tasks offered by the picker: the suite's own for `tasks`; for `unseen_tasks` the held-out `unseen`
    suite first, then every other task of the environment (any task can be held out)."""
    catalog = catalog_of(env)
    if catalog is None:
        return []
    suites = list(catalog.suites)
    if field_name == "tasks":
        return catalog.suite_tasks(suite) if suite in suites else []
    first = [UNSEEN_SUITE] if UNSEEN_SUITE in suites else []
    ordered = [t for s in first + [s for s in suites if s != UNSEEN_SUITE] for t in catalog.suite_tasks(s)]
    return list(dict.fromkeys(ordered))


def float_step(default: float) -> float:
    """A +/- button step of the order of the default (0.1 for 3e-4 would be useless)."""
    if not default or not math.isfinite(default):
        return 0.1
    return 10.0 ** math.floor(math.log10(abs(default)))


def form_values_to_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """Widget values -> a config dict: text trimmed, an empty checkpoint choice as "" (no checkpoint)."""
    config = {}
    for name, value in values.items():
        if isinstance(value, str):
            value = value.strip()
        if name in (*CHECKPOINT_FIELDS, *DEMO_FIELDS) and value is None:
            value = ""
        config[name] = value
    return config


def validate(values: Mapping[str, Any]) -> tuple[RunConfig | None, FieldError | None]:
    """The validated config, or the first error with the field it names."""
    try:
        return RunConfig.from_dict(form_values_to_config(values)).validate(), None
    except ConfigError as error:
        return None, FieldError(error.field, error_sentence(error))


def field_words(name: str) -> str:
    """A config field as words: 'teacher_checkpoint' -> 'teacher checkpoint'."""
    return name.replace("_", " ")


def error_sentence(error: ConfigError) -> str:
    """A refusal as a researcher reads it: the field in words (and the form's label for it), then the reason."""
    reason = getattr(error, "reason", None) or str(error)
    return f"{field_words(error.field).capitalize()} ({error.field}): {reason}"


def parse_seeds(text: str) -> list[int]:
    """'0' -> [0]; '0, 1, 2' -> [0, 1, 2]; '0-4' -> [0, 1, 2, 3, 4]. Raises ConfigError('seed') otherwise."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if match := re.fullmatch(r"(\d+)\s*-\s*(\d+)", part):
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                raise ConfigError("seed", f"range {part!r} runs backwards")
            seeds.extend(range(low, high + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ConfigError("seed", f"seeds are whole numbers, lists (0, 1, 2) or ranges (0-4); got {part!r}")
    if not seeds:
        raise ConfigError("seed", "give at least one seed")
    return list(dict.fromkeys(seeds))


def parse_tags(text: str) -> list[str]:
    return list(dict.fromkeys(tag.strip() for tag in str(text).split(",") if tag.strip()))
