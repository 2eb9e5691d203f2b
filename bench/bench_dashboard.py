"""Dashboard benchmark: the Compare page's data + figure build with 8 runs x 10,000 steps in the store.

    python bench/bench_dashboard.py [--runs 8 --steps 10000 --repeats 3]

Fills a throw-away SQLite store (a temporary OPD_DATA_DIR) with runs of 4 settings x 2 seeds, each logging
train/success, train/entropy, train/loss, time/env_steps and time/wall_seconds at every step, then times what one
draw of the Compare page does: the metrics query through worker.api, curves, EMA, seed bands, Plotly figures
and their JSON (what st.plotly_chart sends), on the step and the env-steps axes; then a live refresh after it
(the runs are left running at their last step, so the session's series cache reads only the newest step). It
also times a whole Compare page run in Streamlit's AppTest. Prints one JSON object; the target is under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEYS = ("train/success", "train/entropy", "train/loss", "time/env_steps", "time/wall_seconds")
OBJECTIVES = ("reverse_kl", "forward_kl", "hard_ce", "reverse_kl_exact")
TARGET_SECONDS = 2.0


def fill_store(runs: int, steps: int) -> float:
    """Runs written straight through the worker's store (as its SQL sink would); returns seconds taken."""
    from opd_core.config import RunConfig
    from worker import lifecycle
    from worker.metric_rows import MetricPoint, upsert_metrics
    from worker.migrate import upgrade_to_head
    from worker.settings import Settings
    from worker.store import Store

    started = time.perf_counter()
    store = Store(Settings.from_env())
    upgrade_to_head(store.engine)
    rng = np.random.default_rng(0)
    for index in range(runs):
        config = RunConfig(
            name=f"bench-{index}",
            objective=OBJECTIVES[index // 2 % len(OBJECTIVES)],
            seed=index % 2,
            teacher_checkpoint="/bench/teacher",
            steps=steps,
        ).to_dict()
        run_id = lifecycle.create_run(store, config, name=config["name"], queue="cpu", total_steps=steps)
        lifecycle.claim(store, run_id, 1, "bench-host")
        points = _points(rng, steps)
        for start in range(0, len(points), 20_000):
            with store.session() as session:
                upsert_metrics(session, run_id, [MetricPoint(*p) for p in points[start : start + 20_000]])
        with store.session() as session:  # running, at its last step, as the worker's sink leaves it
            lifecycle.touch(session, run_id, 1, step=steps, total=steps)
    store.close()
    return time.perf_counter() - started


def _points(rng: np.random.Generator, steps: int) -> list[tuple[str, int, float, float]]:
    step = np.arange(1, steps + 1)
    curves = {
        "train/success": np.clip(1 - np.exp(-step / (steps / 5)) + rng.normal(0, 0.05, steps), 0, 1),
        "train/entropy": 2.5 + 0.3 * np.sin(step / 500) + rng.normal(0, 0.02, steps),
        "train/loss": np.exp(-step / steps) + rng.normal(0, 0.01, steps),
        "time/env_steps": step * 64.0 * 40,
        "time/wall_seconds": step * 0.8,
    }
    return [(key, int(s), float(v), 1.7e9 + float(s)) for key, values in curves.items() for s, v in zip(step, values)]


def time_compare_build(lab, run_ids: list[int], axis: str, repeats: int) -> dict:
    """A first draw (everything read) and the live refreshes after it (the session's series cache)."""
    from app.compare import build_view, teacher_references
    from app.live_series import SeriesCache

    keys = ["train/success", "train/entropy"]
    timings, refresh_timings = [], []
    for _ in range(repeats):
        cache = SeriesCache()
        for timing in (timings, refresh_timings):
            started = time.perf_counter()
            runs = [lab.get_run(run_id) for run_id in run_ids]
            references = teacher_references(lab, runs, lab.list_runs())
            view = build_view(lab, runs, keys, axis=axis, smoothing=0.6, references=references, cache=cache)
            payload = [figure.to_json() for _, figure in view.figures]
            timing.append(time.perf_counter() - started)
    points = sum(len(s.steps) for by_key in view.data.values() for s in by_key.values())
    started = time.perf_counter()
    lab.metrics(run_ids, [*keys, *(["time/env_steps"] if axis == "env_steps" else [])])
    return {
        "axis": axis,
        "seconds_first": round(timings[0], 3),
        "seconds_best": round(min(timings), 3),
        "refresh_seconds_best": round(min(refresh_timings), 3),
        "query_seconds": round(time.perf_counter() - started, 3),
        "points": points,
        "figure_json_bytes": sum(len(p) for p in payload),
    }


def time_apptest_page(run_ids: list[int]) -> dict:
    """A whole Compare page (controls, fragment, charts) in Streamlit's test runner: the first run of a session
    (it includes AppTest's one-off setup, about 1.5 s of scanning installed packages for components, which a
    server does once at start), then a rerun of the same session (what a browser reload or a control costs)."""
    from streamlit.testing.v1 import AppTest

    def script():
        from app.main import main

        main(default="compare")

    app = AppTest.from_function(script, default_timeout=60)
    for run_id in run_ids:
        app.query_params.setdefault("runs", []).append(str(run_id))
    app.query_params["x"] = "env_steps"
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        app.run()
        timings.append(time.perf_counter() - started)
        if app.exception:
            raise RuntimeError(f"the Compare page failed: {app.exception[0].value}")
    return {"first_run_seconds": round(timings[0], 3), "rerun_seconds": round(timings[1], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opd-bench-dashboard-") as data_dir:
        os.environ["OPD_DATA_DIR"] = data_dir
        os.environ.pop("OPD_DATABASE_URL", None)
        fill_seconds = fill_store(args.runs, args.steps)
        from app.backend import api

        lab = api()
        run_ids = sorted(run.id for run in lab.list_runs())
        results = [time_compare_build(lab, run_ids, axis, args.repeats) for axis in ("step", "env_steps")]
        page = time_apptest_page(run_ids)
    worst = max(result["seconds_first"] for result in results)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "steps": args.steps,
                "keys_plotted": 2,
                "fill_seconds": round(fill_seconds, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
                "compare_build": results,
                "apptest_compare_page": page,
                "target_seconds": TARGET_SECONDS,
                "meets_target": worst < TARGET_SECONDS and page["rerun_seconds"] < TARGET_SECONDS,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
