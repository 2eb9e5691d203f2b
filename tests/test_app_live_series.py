"""The live chart's series cache: only new points are read, ended runs are not read again, resumes restart."""

from dataclasses import replace

import numpy as np

from app.live_series import SeriesCache
from test_app_fakes import FakeApi, series


def _metric_calls(lab):
    calls = [c for c in lab.calls if c[0] == "metrics"]
    lab.calls.clear()
    return calls


def test_a_running_run_is_topped_up_from_its_watermark():
    lab = FakeApi()
    run = lab.add_run(status="running", step=5, attempt=1)
    lab.series[run.id] = {"train/success": series(np.arange(1, 6), np.arange(1, 6) / 10)}
    cache = SeriesCache()
    first = cache.fetch(lab, [run], ["train/success"])
    assert list(first[run.id]["train/success"].steps) == [1, 2, 3, 4, 5]
    assert _metric_calls(lab) == [("metrics", [run.id], ["train/success"])]
    # the worker went on, and rewrote step 5 (a retried flush)
    lab.series[run.id] = {"train/success": series(np.arange(1, 9), [0.1, 0.2, 0.3, 0.4, 0.55, 0.6, 0.7, 0.8])}
    run = replace(run, step=8)
    second = cache.fetch(lab, [run], ["train/success"])
    got = second[run.id]["train/success"]
    assert list(got.steps) == list(range(1, 9)) and got.values[4] == 0.55
    assert _metric_calls(lab) == [("metrics", [run.id], ["train/success"], 5)]


def test_an_ended_run_is_read_once_after_it_ended():
    lab = FakeApi()
    run = lab.add_run(status="finished", step=3)
    lab.series[run.id] = {"train/success": series([1, 2, 3], [0.1, 0.2, 0.3])}
    cache = SeriesCache()
    cache.fetch(lab, [run], ["train/success"])
    again = cache.fetch(lab, [run], ["train/success"])
    assert list(again[run.id]["train/success"].values) == [0.1, 0.2, 0.3]
    assert len(_metric_calls(lab)) == 1


def test_a_resumed_run_and_new_keys_are_read_from_scratch():
    lab = FakeApi()
    run = lab.add_run(status="crashed", step=6, attempt=1)
    lab.series[run.id] = {"train/success": series([1, 2, 3, 4, 5, 6], [0.1] * 6)}
    cache = SeriesCache()
    cache.fetch(lab, [run], ["train/success"])
    lab.series[run.id] = {"train/success": series([1, 2, 3, 4], [0.2] * 4)}  # resumed from step 4's checkpoint
    run = replace(run, status="running", attempt=2, step=4)
    resumed = cache.fetch(lab, [run], ["train/success"])
    assert list(resumed[run.id]["train/success"].steps) == [1, 2, 3, 4]
    _metric_calls(lab)
    cache.fetch(lab, [run], ["train/success", "train/entropy"])
    assert _metric_calls(lab) == [("metrics", [run.id], ["train/success", "train/entropy"])]
