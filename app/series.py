"""Metric series as the Compare page draws them: the x-axis, EMA smoothing, and seeds folded into a band.

Input series are anything with `steps` and `values` arrays (worker's MetricSeries). Seeds of one setting are
aligned on the training step (they share it exactly), so a band never interpolates between points that were
not measured; on the env-steps and wall-time axes the band sits at the seeds' mean x for that step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

X_AXES = {"step": "training step", "env_steps": "environment steps", "wall_time": "wall time (s)"}
"""x-axis choice -> axis title."""
X_AXIS_METRICS = {"env_steps": "time/env_steps", "wall_time": "time/wall_seconds"}
"""The per-step metric that maps a training step to the other x-axes (both counted from the run's start, so a
resumed run continues where it stopped instead of jumping by the time it spent crashed)."""


class Series(Protocol):
    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Curve:
    """One run's key, ready to plot: x and y aligned with the training steps they came from."""

    steps: np.ndarray
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Band:
    """Seeds of one setting at each step: their mean, min and max, and how many seeds had a value there."""

    steps: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style exponential moving average, debiased so that the first points are not pulled to 0.

    weight 0 returns the values unchanged; non-finite values (NaN, inf) stay as gaps and do not enter the
    average, so one diverged step does not poison the rest of the curve.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or values.size == 0:
        return values.copy()
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    finite = np.isfinite(values)
    out = np.full(values.shape, np.nan)
    count = int(finite.sum())
    if count == 0:
        return values.copy()
    running = _running_average(values[finite], weight)
    out[finite] = running / (1 - weight ** np.arange(1, count + 1))
    return out


_BLOCK = 128


def _running_average(values: np.ndarray, weight: float) -> np.ndarray:
    """s_t = weight * s_(t-1) + (1 - weight) * v_t with s_(-1) = 0, a block of 128 steps per matrix product
    (a Python loop over 80,000 points took 0.2 s of every live refresh)."""
    size = values.size
    blocks = np.concatenate([values, np.zeros(-size % _BLOCK)]).reshape(-1, _BLOCK)
    offsets = np.arange(_BLOCK)
    lag = offsets[:, None] - offsets[None, :]
    decay = np.where(lag >= 0, weight ** np.maximum(lag, 0), 0.0)  # decay[j, i] = weight^(j - i), i <= j
    # einsum's own loop, not BLAS: a threaded BLAS on a busy 2-core machine made this product 30x slower
    within = (1 - weight) * np.einsum("bi,ji->bj", blocks, decay)
    carried = weight ** (offsets + 1)
    out = np.empty_like(within)
    previous = 0.0
    for index in range(within.shape[0]):
        out[index] = within[index] + carried * previous
        previous = out[index, -1]
    return out.reshape(-1)[:size]


def x_values(steps: np.ndarray, axis: str, run_metrics: Mapping[str, Series]) -> np.ndarray:
    """The x coordinate of each step on the chosen axis, from the run's own time/... series.

    Steps outside that series (the step-0 evaluation, before anything ran) are placed by linear interpolation
    from (0, 0); a run that has not logged its time series yet falls back to NaN so it simply does not draw.
    """
    steps = np.asarray(steps)
    if axis == "step":
        return steps.astype(np.float64)
    if axis not in X_AXIS_METRICS:
        raise ValueError(f"unknown x-axis {axis!r}; choose one of {', '.join(X_AXES)}")
    mapping = run_metrics.get(X_AXIS_METRICS[axis])
    if mapping is None or len(mapping.steps) == 0:
        return np.full(steps.shape, np.nan)
    known_steps = np.concatenate([[0], np.asarray(mapping.steps, dtype=np.float64)])
    known_x = np.concatenate([[0.0], np.asarray(mapping.values, dtype=np.float64)])
    return np.interp(steps.astype(np.float64), known_steps, known_x)


def to_curve(series: Series, axis: str, run_metrics: Mapping[str, Series], smoothing: float = 0.0) -> Curve:
    steps = np.asarray(series.steps)
    return Curve(steps, x_values(steps, axis, run_metrics), ema(series.values, smoothing))


def fold_seeds(curves: Sequence[Curve]) -> Band:
    """Mean and min-max of several seeds' curves at every step any of them reached (NaNs are skipped)."""
    if not curves:
        empty = np.array([], dtype=np.float64)
        return Band(np.array([], dtype=np.int64), empty, empty, empty, empty, np.array([], dtype=np.int64))
    steps = np.unique(np.concatenate([curve.steps for curve in curves]))
    ys = np.full((len(curves), steps.size), np.nan)
    xs = np.full((len(curves), steps.size), np.nan)
    for row, curve in enumerate(curves):
        columns = np.searchsorted(steps, curve.steps)
        ys[row, columns] = curve.y
        xs[row, columns] = curve.x
    return Band(
        steps,
        _nan_mean(xs),
        _nan_mean(ys),
        _nan_reduce(ys, np.min, np.inf),
        _nan_reduce(ys, np.max, -np.inf),
        np.isfinite(ys).sum(axis=0),
    )


def _nan_mean(matrix: np.ndarray) -> np.ndarray:
    """Column means over finite entries; NaN where a column has none (without numpy's all-NaN warning)."""
    finite = np.isfinite(matrix)
    count = finite.sum(axis=0)
    total = np.where(finite, matrix, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _nan_reduce(matrix: np.ndarray, reduce, neutral: float) -> np.ndarray:
    finite = np.isfinite(matrix)
    out = reduce(np.where(finite, matrix, neutral), axis=0)
    return np.where(finite.any(axis=0), out, np.nan)


def decimate(band: Band, max_points: int) -> Band:
    """At most `max_points` evenly strided points (always keeping the last one): a browser draws 10,000-step
    curves of many runs no better than 2,000 points, only slower."""
    size = band.steps.size
    if size <= max_points:
        return band
    index = np.unique(np.concatenate([np.linspace(0, size - 1, max_points).round().astype(np.int64), [size - 1]]))
    return Band(
        band.steps[index], band.x[index], band.mean[index], band.low[index], band.high[index], band.count[index]
    )
