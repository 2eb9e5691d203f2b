"""End to end, in headless Chromium: the views a researcher lives in, on a store with many runs and long names.

Ten runs are written into the embedded store the way a worker writes them (metrics every step, evaluated
checkpoints, real H.264 rollout videos), one of them failed; no worker is needed. The test opens a run's page
from the Runs table, the sweep view and the step-synced video grid, and takes a screenshot of Runs, Run, Sweep,
Videos and Forgetting at 1440 and 1024 px wide (artifacts/dashboard/views-*.png) for a person to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from browser_fixtures import browser, dashboard, lab_settings, page  # noqa: F401 - fixtures, used by name
from browser_pages import ARTIFACTS, BROWSER_TESTS, settle, visit

pytestmark = BROWSER_TESTS

UNSEEN = [
    "unseen/put_red_block_behind_tray",
    "unseen/put_green_block_to_the_left_of_plate",
    "unseen/put_blue_block_in_front_of_bowl",
    "unseen/put_yellow_block_to_the_right_of_plate",
]
TASKS = ["object/pick_red_block_into_basket", "object/pick_blue_block_into_basket"]
STEPS = 30
WIDTHS = (1440, 1024)
SHOT_HEIGHT = 2000
"""Streamlit scrolls inside its own container: a tall window shows the whole page in one screenshot."""
LONG_NAME = "objective ablation on the object suite with the shipped teacher"


def write_run(settings, run_id: int, quality: float, seed: int) -> None:
    """What a worker records for one run: metrics every step, a checkpoint with its evaluation every 10 steps,
    a video per task at each evaluation."""
    from opd_core.video import write_mp4
    from worker import lifecycle
    from worker.sql_sink import SqlSink
    from worker.store import Store

    store = Store(settings)
    claim = lifecycle.claim(store, run_id, 1, "e2e-host")
    sink = SqlSink(store, run_id, claim.attempt, run_dir=claim.config["out_dir"], heartbeat_seconds=0.2)
    rng = np.random.default_rng(run_id)
    for step in range(STEPS + 1):
        progress = step / STEPS
        if step:
            sink.log(
                {
                    "train/success": min(1.0, quality * progress + rng.normal(0, 0.03)),
                    "train/entropy": 2.5 - 1.5 * progress,
                    "train/reverse_kl": 1.0 - 0.8 * progress,
                    "time/env_steps": 64.0 * step,
                },
                step,
            )
            sink.progress(step, STEPS)
        if step % 10 == 0:
            seen = round(min(1.0, quality * progress + seed * 0.02), 3)
            per_task = {
                task: round(max(0.0, 0.6 - (0.2 + i * 0.05) * progress * quality), 3) for i, task in enumerate(UNSEEN)
            }
            sink.log({"eval/seen_success": seen, "eval/unseen_success": float(np.mean(list(per_task.values())))}, step)
            sink.log_checkpoint(
                step,
                f"checkpoints/step_{step}",
                {"seen_success": seen, "unseen_success": float(np.mean(list(per_task.values()))), "per_task": per_task},
            )
            for index, task in enumerate(TASKS):
                frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
                frames[:, :, :, index] = np.linspace(40, 240, 8, dtype=np.uint8)[:, None, None]
                relative = f"videos/step_{step}/{task.replace('/', '_')}.mp4"
                write_mp4(settings.data_dir / claim.config["out_dir"] / relative, frames, fps=8, scale=2)
                sink.log_video(step, task, seen > 0.5 - index * 0.2, relative)
    sink.close()
    lifecycle.finish(store, run_id, claim.attempt, "finished", step=STEPS)
    store.close()


@pytest.fixture
def many_runs(lab, lab_settings):
    """A 3 x 3 sweep (group size x seed) with long names, and a failed run; returns (sweep id, run ids)."""
    from worker import lifecycle
    from worker.store import Store

    base = {
        "name": LONG_NAME,
        "pipeline": "grpo",
        "unseen_tasks": UNSEEN,
        "tasks": TASKS,
        "steps": STEPS,
        "eval_every": 10,
        "save_every": 10,
    }
    sweep_id, run_ids = lab.launch_sweep(base, {"group_size": [2, 4, 8], "seed": [0, 1, 2]}, "group size sweep")
    for run_id in run_ids:
        config = lab.get_run(run_id).config
        write_run(lab_settings, run_id, quality={2: 0.5, 4: 0.7, 8: 0.9}[config["group_size"]], seed=config["seed"])
    failed = lab.launch({**base, "name": "grpo with a learning rate far too high", "lr": 0.5})
    store = Store(lab_settings)
    claim = lifecycle.claim(store, failed, 1, "e2e-host")
    lifecycle.finish(
        store,
        failed,
        claim.attempt,
        "failed",
        step=3,
        error="non-finite loss at step 3 (lr=0.5)",
        traceback="Traceback (most recent call last):\n  ...\nFloatingPointError: loss is nan",
    )
    store.close()
    return sweep_id, [*run_ids, failed]


def shoot_at_widths(page, name: str, ready) -> None:
    """A full-page screenshot at each width, after `ready(page)` confirms what must be drawn."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": SHOT_HEIGHT})
        page.wait_for_timeout(800)  # Streamlit and Plotly re-lay out on resize
        ready(page)
        page.screenshot(path=str(ARTIFACTS / f"views-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 1000})


def charts_drawn(count: int):
    def ready(page) -> None:
        page.locator(".js-plotly-plot").nth(count - 1).wait_for(timeout=60_000)
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {count}")

    return ready


def wait_for_players(page, condition, what: str, read: str = "v.currentTime", timeout: float = 15.0) -> None:
    """Wait until `condition` holds for every player's `read` (a JS expression of v, the video element)."""
    deadline = time.monotonic() + timeout
    while True:
        times = page.locator("video").evaluate_all(f"vs => vs.map(v => {read})")
        if condition(times):
            return
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}: {times}"
        page.wait_for_timeout(100)


def test_run_page_sweep_and_video_grid_in_a_browser(many_runs, dashboard, page):
    url = dashboard
    sweep_id, run_ids = many_runs
    failed = run_ids[-1]

    # --- Runs: every run links to its page; the failed run's page shows its error and traceback
    visit(page, f"{url}/runs")
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
    shoot_at_widths(page, "runs", lambda p: p.get_by_test_id("stDataFrame").first.wait_for())
    picker = page.locator("input[aria-label='Selected runs (tick rows in the table, or pick here)']")
    picker.click()
    picker.press_sequentially(f"#{failed} grpo")  # typing opens the list filtered to that run
    page.get_by_role("option", name=f"#{failed} grpo with a learning rate far too high").click()
    page.keyboard.press("Escape")
    settle(page)
    page.get_by_role("link", name=f"Open the page of #{failed}").click()
    settle(page)
    assert page.url.endswith(f"/run?id={failed}")
    page.get_by_text("non-finite loss at step 3").first.wait_for(timeout=30_000)
    page.get_by_text("FloatingPointError: loss is nan").first.wait_for(timeout=30_000)

    # --- a finished run's page: its evaluations chart, checkpoints, config and log
    visit(page, f"{url}/run?id={run_ids[4]}")
    charts_drawn(1)(page)
    page.get_by_text("Checkpoints and evaluations").wait_for()
    png = page.get_by_role("button", name="PNG", exact=True)
    png.first.wait_for()  # the export buttons may be drawn a moment after the text above them
    assert png.count() == 1
    shoot_at_widths(page, "run", charts_drawn(1))

    # --- the sweep: final seen success against the group size, one point per seed, and parallel coordinates
    visit(page, f"{url}/sweep?sweep={sweep_id}")
    charts_drawn(2)(page)
    scatter = page.locator(".js-plotly-plot").first.evaluate(
        "div => div._fullData.map(t => [t.name, t._length || (t.y || []).length])"
    )
    assert dict(scatter) == {"seed 0": 3, "seed 1": 3, "seed 2": 3, "mean": 3}, scatter
    shoot_at_widths(page, "sweep", charts_drawn(2))
    if page.get_by_role("button", name="PNG", exact=True).first.is_enabled():  # the server has kaleido
        for fmt, magic in (("PNG", b"\x89PNG"), ("SVG", b"<svg")):
            with page.expect_download(timeout=120_000) as download:
                page.get_by_role("button", name=fmt, exact=True).first.click()
            assert download.value.suggested_filename == f"opd-sweep-scatter.{fmt.lower()}"
            assert Path(download.value.path()).read_bytes().startswith(magic)

    # --- videos: three runs in a grid, one slider for all; every player plays
    chosen = "&".join(f"runs={i}" for i in run_ids[:3])
    visit(page, f"{url}/videos?{chosen}&step=20")
    page.locator("video").nth(5).wait_for(timeout=60_000)  # 3 runs x 2 tasks
    assert page.locator("video").count() == 6
    assert page.get_by_text("✓ success").count() + page.get_by_text("✗ failure").count() == 6
    played = (
        page.locator("video")
        .nth(5)
        .evaluate("""v => new Promise(done => { v.muted = true;
        v.play().then(() => setTimeout(() => done(v.currentTime), 500), e => done(-1)); })""")
    )
    assert played > 0
    # the players move together: speed, seeking, playing and pausing one moves every other
    page.locator("video").nth(1).evaluate("v => { v.pause(); v.playbackRate = 0.25; }")  # a 1 s clip lasts 4 s
    wait_for_players(page, lambda rates: rates == [0.25] * 6, "every player at a quarter speed", "v.playbackRate")
    page.locator("video").nth(0).evaluate("v => { v.currentTime = 0.5; }")
    wait_for_players(page, lambda times: all(abs(t - 0.5) < 0.05 for t in times), "every player at 0.5 s")
    page.locator("video").nth(2).evaluate("v => { v.muted = true; return v.play(); }")
    wait_for_players(page, lambda times: all(t > 0.5 for t in times), "every player playing on")
    page.locator("video").nth(3).evaluate("v => v.pause()")
    wait_for_players(page, lambda states: all(p and not e for p, e in states), "all paused", "[v.paused, v.ended]")
    shoot_at_widths(page, "videos", lambda p: p.locator("video").nth(5).wait_for())

    # --- forgetting: four panels whose titles fit
    visit(page, f"{url}/forgetting?" + "&".join(f"runs={i}" for i in run_ids[:9]))
    charts_drawn(1)(page)
    titles = page.locator(".js-plotly-plot .annotation-text").evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert any("put red block behind" in title for title in titles), titles
    shoot_at_widths(page, "forgetting", charts_drawn(1))
