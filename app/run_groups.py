"""Which runs are "the same experiment": runs whose configs differ only by seed (and names) form one group.

A group is drawn as one curve with a band (Compare), one line colour (Forgetting) and one row (Results). Its
label names the method and only the settings that differ between the groups on screen, so that a legend reads
"OPD (reverse KL) · G=4" instead of a config dump.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

IDENTITY_FIELDS = frozenset({"name", "seed", "out_dir", "device", "teacher_device"})
"""Fields that tell runs apart without changing what they measure (seed: the repeats to fold into a band)."""
PER_SUITE_FIELDS = frozenset(
    {"suite", "tasks", "unseen_tasks", "student_checkpoint", "teacher_checkpoint", "demos", "max_episode_steps"}
)
"""Fields that follow from the suite a run trains on: the Results table puts suites in columns, not rows."""
METHOD_FIELDS = ("pipeline", "objective")

OBJECTIVE_NAMES = {
    "reverse_kl": "reverse KL",
    "reverse_kl_exact": "exact reverse KL",
    "forward_kl": "forward KL",
    "hard_ce": "hard CE",
}
SHORT_FIELD_NAMES = {"group_size": "G", "batch_tasks": "B", "temperature": "T", "grpo_steps": "GRPO steps"}


class RunLike(Protocol):
    id: int
    name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class RunGroup:
    key: str
    label: str
    run_ids: tuple[int, ...]
    config: dict[str, Any]
    """The first run's config (every member shares it outside the ignored fields)."""

    @property
    def legend(self) -> str:
        """The label with the number of seeds folded into it, for chart legends."""
        return f"{self.label} ({len(self.run_ids)} seeds)" if len(self.run_ids) > 1 else self.label


def method_label(config: Mapping[str, Any]) -> str:
    """The paper's name for what a run does: Offline SFT, GRPO, OPD (objective), OPD (objective) + GRPO."""
    pipeline = config.get("pipeline", "")
    objective = OBJECTIVE_NAMES.get(config.get("objective", ""), config.get("objective", ""))
    if pipeline == "sft":
        return "Offline SFT"
    if pipeline == "grpo":
        return "GRPO"
    if pipeline == "opd":
        return f"OPD ({objective})"
    if pipeline == "opd_then_grpo":
        return f"OPD ({objective}) + GRPO"
    return pipeline or "unknown"


def settings_key(config: Mapping[str, Any], ignore: Iterable[str] = IDENTITY_FIELDS) -> str:
    """A stable text key of the config without the ignored fields (objective is ignored where unused)."""
    ignored = set(ignore)
    if config.get("pipeline") in ("sft", "grpo"):
        ignored.add("objective")  # the field has a default but these pipelines never read it
    return json.dumps({k: v for k, v in config.items() if k not in ignored}, sort_keys=True, default=str)


def group_runs(runs: Sequence[RunLike], ignore: Iterable[str] = IDENTITY_FIELDS) -> list[RunGroup]:
    """Groups in order of first appearance, each labelled by its method and the settings that set it apart."""
    ignore = frozenset(ignore)
    members: dict[str, list[RunLike]] = {}
    for run in runs:
        members.setdefault(settings_key(run.config, ignore), []).append(run)
    configs = [group[0].config for group in members.values()]
    varying = differing_fields(configs, ignore | set(METHOD_FIELDS))
    return [
        RunGroup(key, _label(group[0].config, varying), tuple(run.id for run in group), dict(group[0].config))
        for key, group in members.items()
    ]


def differing_fields(configs: Sequence[Mapping[str, Any]], ignore: Iterable[str] = ()) -> list[str]:
    """Fields (in config order) whose values are not the same in every config."""
    ignore = set(ignore)
    fields: list[str] = []
    for config in configs:
        fields.extend(name for name in config if name not in fields and name not in ignore)
    return [
        name
        for name in fields
        if len({json.dumps(config.get(name), sort_keys=True, default=str) for config in configs}) > 1
    ]


def _label(config: Mapping[str, Any], varying: Sequence[str]) -> str:
    return " · ".join(
        [method_label(config)] + [f"{SHORT_FIELD_NAMES.get(name, name)}={_short(config.get(name))}" for name in varying]
    )


def _short(value: Any) -> str:
    """Paths shortened to their last two parts; lists joined; numbers as written."""
    if isinstance(value, list):
        return ",".join(_short(v) for v in value) or "[]"
    if isinstance(value, str) and "/" in value and " " not in value:
        return "/".join(value.rstrip("/").split("/")[-2:])
    if value in ("", None):
        return "none"
    return str(value)
