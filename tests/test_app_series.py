"""The Compare page's series logic: EMA smoothing, the x-axis choice, seeds folded into a mean and a band."""

import math

import numpy as np
import pytest

from app.series import Curve, decimate, ema, fold_seeds, to_curve, x_values
from test_app_fakes import series


def test_ema_zero_weight_is_identity():
    values = np.array([0.0, 1.0, 0.5])
    assert np.array_equal(ema(values, 0.0), values)


def test_ema_is_debiased_so_the_first_point_is_kept():
    smoothed = ema(np.array([1.0, 1.0, 1.0]), 0.9)
    assert np.allclose(smoothed, 1.0)


def test_ema_matches_the_textbook_recurrence():
    values = np.array([0.0, 1.0, 0.0, 1.0])
    weight = 0.5
    running, expected = 0.0, []
    for t, v in enumerate(values, start=1):
        running = weight * running + (1 - weight) * v
        expected.append(running / (1 - weight**t))
    assert np.allclose(ema(values, weight), expected)


def test_ema_keeps_non_finite_values_as_gaps_without_poisoning_later_points():
    smoothed = ema(np.array([1.0, math.nan, math.inf, 1.0]), 0.6)
    assert smoothed[0] == pytest.approx(1.0) and smoothed[3] == pytest.approx(1.0)
    assert math.isnan(smoothed[1]) and math.isnan(smoothed[2])


def test_ema_of_a_long_series_matches_the_step_by_step_recurrence():
    rng = np.random.default_rng(0)
    values = rng.normal(size=1000)
    values[[3, 400, 401]] = [math.nan, math.inf, -math.inf]
    for weight in (0.3, 0.9, 0.999):
        running, debias, expected = 0.0, 1.0, []
        for value in values:
            if not math.isfinite(value):
                expected.append(math.nan)
                continue
            running = weight * running + (1 - weight) * value
            debias *= weight
            expected.append(running / (1 - debias))
        assert np.allclose(ema(values, weight), expected, equal_nan=True, rtol=1e-9, atol=1e-12)


def test_ema_rejects_a_weight_of_one():
    with pytest.raises(ValueError):
        ema(np.array([1.0]), 1.0)


def test_x_axis_by_step_env_steps_and_wall_time():
    run_metrics = {
        "time/env_steps": series([1, 2, 3], [64, 128, 192]),
        "time/wall_seconds": series([1, 2, 3], [0.5, 1.0, 1.5]),
    }
    steps = np.array([0, 1, 2, 3])
    assert list(x_values(steps, "step", run_metrics)) == [0, 1, 2, 3]
    # the step-0 evaluation happens before any environment step
    assert list(x_values(steps, "env_steps", run_metrics)) == [0, 64, 128, 192]
    assert list(x_values(steps, "wall_time", run_metrics)) == [0, 0.5, 1.0, 1.5]


def test_x_axis_without_the_time_series_is_nan_not_an_error():
    assert np.isnan(x_values(np.array([1, 2]), "env_steps", {})).all()
    with pytest.raises(ValueError):
        x_values(np.array([1]), "minutes", {})


def test_to_curve_smooths_y_and_maps_x():
    curve = to_curve(series([1, 2], [0.0, 1.0]), "env_steps", {"time/env_steps": series([1, 2], [10, 20])}, 0.5)
    assert list(curve.x) == [10, 20] and curve.y[0] == 0.0 and 0 < curve.y[1] < 1


def test_fold_seeds_gives_mean_and_min_max_on_shared_steps():
    a = Curve(np.array([1, 2, 3]), np.array([1.0, 2, 3]), np.array([0.0, 0.2, 0.4]))
    b = Curve(np.array([1, 2, 3]), np.array([1.0, 2, 3]), np.array([0.2, 0.4, 0.8]))
    band = fold_seeds([a, b])
    assert np.allclose(band.mean, [0.1, 0.3, 0.6])
    assert np.allclose(band.low, [0.0, 0.2, 0.4]) and np.allclose(band.high, [0.2, 0.4, 0.8])
    assert list(band.count) == [2, 2, 2]


def test_fold_seeds_with_a_seed_that_is_still_running():
    finished = Curve(np.array([1, 2, 3]), np.array([10.0, 20, 30]), np.array([0.1, 0.2, 0.3]))
    running = Curve(np.array([1]), np.array([12.0]), np.array([0.3]))
    band = fold_seeds([finished, running])
    assert list(band.count) == [2, 1, 1]
    assert np.allclose(band.mean, [0.2, 0.2, 0.3])
    assert np.allclose(band.x, [11.0, 20, 30])  # x averaged over the seeds that have the step


def test_fold_seeds_of_nothing_is_empty():
    assert fold_seeds([]).steps.size == 0


def test_fold_seeds_with_nan_everywhere_at_a_step():
    a = Curve(np.array([1, 2]), np.array([1.0, 2]), np.array([math.nan, 0.5]))
    band = fold_seeds([a, a])
    assert math.isnan(band.mean[0]) and math.isnan(band.low[0]) and band.count[0] == 0


def test_decimate_keeps_the_ends_and_caps_the_points():
    steps = np.arange(10_000)
    band = fold_seeds([Curve(steps, steps.astype(float), np.sin(steps))])
    small = decimate(band, 500)
    assert small.steps.size <= 501 and small.steps[0] == 0 and small.steps[-1] == 9_999
    assert decimate(band, 20_000) is band
