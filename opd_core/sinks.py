"""Metrics sinks: where the training loop's scalars, checkpoint events and videos go.

The loop knows only the `MetricsSink` protocol. `LocalDirSink` writes JSON lines into the run folder (the CLI's
default); the worker package provides a SQL sink with the same methods. Paths handed to a sink are relative to
the run's `out_dir` so that a run folder can move between machines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class MetricsSink(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics (namespaced keys such as train/entropy) for a training step."""

    def log_checkpoint(self, step: int, path: str, summary: dict[str, Any]) -> None:
        """A checkpoint was written at `path` (relative to out_dir) with an evaluation summary."""

    def log_video(self, step: int, task: str, success: bool, path: str) -> None:
        """A rollout video (H.264 mp4, relative path) of `task` at checkpoint `step`."""

    def progress(self, step: int, total: int) -> None:
        """The loop finished `step` of `total` steps (called every step; cheap)."""

    def resume_from(self, step: int) -> None:
        """The run restarts after `step`: forget anything recorded for later steps."""

    def close(self) -> None:
        """Flush and release resources (called once, also after errors)."""


class NullSink:
    """Discards everything (tests and throw-away evaluations)."""

    def log(self, metrics, step):
        pass

    def log_checkpoint(self, step, path, summary):
        pass

    def log_video(self, step, task, success, path):
        pass

    def progress(self, step, total):
        pass

    def resume_from(self, step):
        pass

    def close(self):
        pass


class LocalDirSink:
    """Appends JSON lines to `out_dir/metrics.jsonl`, `checkpoints.jsonl` and `videos.jsonl`.

    Non-finite values are written as the strings "nan", "inf" and "-inf" so that the files stay valid JSON.
    """

    FILES = ("metrics.jsonl", "checkpoints.jsonl", "videos.jsonl")

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._handles = {name: open(self.out_dir / name, "a") for name in self.FILES}  # noqa: SIM115 - open for the object's (process's) lifetime, closed by its close()

    def _write(self, name: str, row: dict[str, Any]) -> None:
        handle = self._handles[name]
        handle.write(json.dumps(row) + "\n")
        handle.flush()

    def log(self, metrics, step):
        self._write("metrics.jsonl", {"step": step, **{k: encode_float(v) for k, v in metrics.items()}})

    def log_checkpoint(self, step, path, summary):
        self._write("checkpoints.jsonl", {"step": step, "path": path, "summary": summary})

    def log_video(self, step, task, success, path):
        self._write("videos.jsonl", {"step": step, "task": task, "success": bool(success), "path": path})

    def progress(self, step, total):
        pass

    def resume_from(self, step):
        for name in self.FILES:
            self._handles[name].close()
            path = self.out_dir / name
            rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            path.write_text("".join(row + "\n" for row in rows))
            self._handles[name] = open(path, "a")  # noqa: SIM115 - open for the object's (process's) lifetime, closed by its close()

    def close(self):
        for handle in self._handles.values():
            handle.close()


def encode_float(value: float) -> float | str:
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """Read back `metrics.jsonl` of a run folder, decoding non-finite values."""
    rows = []
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows.append({k: (float(v) if isinstance(v, str) else v) for k, v in row.items()})
    return rows
