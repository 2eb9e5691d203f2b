"""The result of an evaluation, whatever protocol produced it (this module imports nothing else of the project)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EvalResult:
    per_task: dict[str, float]
    seen_success: float
    unseen_success: float | None
    videos: list[dict] = field(default_factory=list)
    """One dict per written video: task, success, path (relative to the run folder)."""
    details: dict = field(default_factory=dict)
    """Simulator-specific facts (LIBERO: episodes lost to environment failures, mean episode length per task)."""

    def metrics(self) -> dict[str, float]:
        out = {"eval/seen_success": self.seen_success}
        if self.unseen_success is not None:
            out["eval/unseen_success"] = self.unseen_success
        out.update({f"eval/success/{task}": value for task, value in self.per_task.items()})
        return out

    def summary(self) -> dict:
        return {
            "seen_success": self.seen_success,
            "unseen_success": self.unseen_success,
            "per_task": self.per_task,
            **self.details,
        }


def mean_success(per_task: dict[str, float], tasks: list[str]) -> float:
    return float(np.mean([per_task[t] for t in tasks])) if tasks else float("nan")
