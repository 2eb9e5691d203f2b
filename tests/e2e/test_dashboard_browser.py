"""End to end, in a real browser: the dashboard and a worker on the embedded default (SQLite + filesystem
broker), driven through headless Chromium (Debian's `chromium` package, through Playwright).

A researcher launches a short run from the form, watches its curve appear and grow on Compare without
reloading, plays a rollout video, then launches a long run and cancels it from the Runs page. A PNG of every
page goes to artifacts/dashboard/ for a person to look at. Skipped, saying why, without chromium or playwright.
"""

from __future__ import annotations

import re
import shutil

import pytest

from browser_fixtures import browser, dashboard, lab_settings, page  # noqa: F401 - fixtures, used by name
from browser_pages import ARTIFACTS, BROWSER_TESTS, choose, settle, shoot, trace_lengths, type_into, visit
from opd_core.envs.libero import libero_available
from polling import wait_for

SHORT_STEPS = 60
"""The watched run: long enough (0.4-1 s per step here, from the shipped student) for the chart to be seen growing."""

pytestmark = BROWSER_TESTS


# ============================================================================================ helpers
def pick_many(page, label: str, text: str, option: str | re.Pattern) -> None:
    """Type into a multiselect to filter it, then take one option (not "select all matches")."""
    page.locator(f"input[aria-label='{label}']").click()
    page.locator(f"input[aria-label='{label}']").fill(text)
    page.get_by_role("option", name=option, exact=isinstance(option, str)).click()
    page.keyboard.press("Escape")


def launch_from_form(page, url: str, name: str, steps: int) -> None:
    visit(page, f"{url}/launch")
    type_into(page, "name", name)
    choose(page, "pipeline", "grpo")  # from a fresh student: no teacher or student checkpoint needed
    pick_many(page, "unseen_tasks", "red_block_behind", "unseen/put_red_block_behind_tray")
    for label, value in (
        ("steps", steps),
        ("batch_tasks", 2),
        ("group_size", 2),
        ("eval_every", 4),
        ("eval_init_states", 2),
        ("videos_per_eval", 1),
        ("save_every", 4),
    ):
        type_into(page, label, str(value))
    page.get_by_test_id("stFormSubmitButton").filter(has_text="Launch").first.click()
    settle(page)
    page.get_by_text("Queued run").wait_for(timeout=30_000)


def assert_first_video_plays(page, play_ms: int) -> None:
    video = page.locator("video").first
    video.wait_for(timeout=60_000)
    played = video.evaluate(
        """(v, ms) => new Promise(done => {
        v.muted = true;
        v.play().then(() => setTimeout(() => done({time: v.currentTime, error: v.error && v.error.code}), ms),
                      e => done({time: 0, error: String(e)}));
    })""",
        play_ms,
    )
    assert played["error"] is None and played["time"] > 0, played


# ============================================================================================ the test
def test_launch_watch_play_and_cancel_in_a_browser(lab, lab_settings, dashboard, page, start_worker):
    url = dashboard
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # only this run's pictures
    start_worker(lab_settings)

    visit(page, url)
    page.get_by_text("the store is empty").wait_for()
    shoot(page, "01-overview-empty-store")
    visit(page, f"{url}/launch")
    shoot(page, "02-launch")

    # --- a short run, launched from the form; its curve appears and grows while the page stays open
    launch_from_form(page, url, "watched", SHORT_STEPS)
    (watched,) = lab.list_runs()
    assert watched.config["pipeline"] == "grpo" and watched.config["steps"] == SHORT_STEPS
    page.get_by_role("link", name="Watch them on Compare").click()
    settle(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=180_000)
    seen = [sum(trace_lengths(page))]
    for _ in range(2):  # two more points in time, without any navigation: the fragment redraws the chart
        seen.append(
            wait_for(
                lambda: (n := sum(trace_lengths(page))) > seen[-1] and n,
                240,
                f"the curve to grow past {seen[-1]} points",
            )
        )
    assert page.url.endswith(f"compare?runs={watched.id}")
    shoot(page, "03-compare-live")

    wait_for(lambda: lab.get_run(watched.id).status == "finished", 300, "the watched run to finish")
    visit(page, f"{url}/compare?runs={watched.id}&keys=train/entropy&keys=eval/seen_success&x=env_steps&smooth=0.5")
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)
    shoot(page, "04-compare-finished")

    # --- the rollout video of a checkpoint plays in the browser (H.264)
    visit(page, f"{url}/videos?runs={watched.id}")
    assert_first_video_plays(page, 1500)
    shoot(page, "05-videos")

    visit(page, f"{url}/forgetting?runs={watched.id}")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    shoot(page, "06-forgetting")
    visit(page, f"{url}/results")
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
    shoot(page, "07-results")

    # --- a long run, cancelled from the Runs page while it runs
    launch_from_form(page, url, "to-cancel", 500)
    to_cancel = max(run.id for run in lab.list_runs())
    wait_for(
        lambda: lab.get_run(to_cancel).status == "running" and lab.get_run(to_cancel).step >= 1,
        180,
        "the second run to start",
    )
    visit(page, f"{url}/runs")
    pick_many(
        page,
        "Selected runs (tick rows in the table, or pick here)",
        f"#{to_cancel} ",
        re.compile(f"^#{to_cancel} to-cancel"),
    )
    settle(page)
    page.get_by_role("button", name="Cancel 1").click()
    settle(page)
    cancelled = wait_for(
        lambda: (run := lab.get_run(to_cancel)).status == "cancelled" and run, 60, "the second run to be cancelled"
    )
    assert cancelled.step < 500
    visit(page, f"{url}/runs")
    shoot(page, "08-runs-after-cancel")
    visit(page, url)
    shoot(page, "09-overview")


# ============================================================================================ LIBERO
@pytest.mark.skipif(
    not libero_available(),
    reason="LIBERO is an optional extra and is not installed (pip install -r requirements-libero.txt)",
)
def test_a_libero_run_shows_its_curves_and_videos_like_any_other(lab, lab_settings, dashboard, page, start_worker):
    """The LIBERO smoke run (two OPD steps, G=2, one LIBERO-Object task, short horizon) through the queue."""
    import torch

    from opd_core.checkpoint import save_checkpoint
    from opd_core.policies import build_policy
    from opd_core.tokenizer import ActionTokenizer

    url = dashboard
    tiny = {"width": 4, "hidden": 32, "input_size": 16}
    for name, seed in (("student", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        policy = build_policy("small_vla", tiny, ActionTokenizer.identity())
        save_checkpoint(lab_settings.data_dir / "models" / name, policy, step=0)
    start_worker(lab_settings)
    task = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    run_id = lab.launch(
        {
            "name": "libero-smoke",
            "env": "libero",
            "suite": "libero_object",
            "tasks": [task],
            "pipeline": "opd",
            "objective": "reverse_kl",
            "student_checkpoint": "models/student",
            "teacher_checkpoint": "models/teacher",
            "steps": 2,
            "batch_tasks": 1,
            "group_size": 2,
            "max_episode_steps": 3,
            "image_size": 32,
            "eval_every": 1,
            "eval_init_states": 1,
            "videos_per_eval": 1,
            "save_every": 0,
            "minibatch_size": 64,
            "updates_per_step": 1,
        }
    )
    run = wait_for(
        lambda: (r := lab.get_run(run_id)).status in ("finished", "failed", "crashed") and r,
        600,
        "the LIBERO run to end",
    )
    assert (run.status, run.error) == ("finished", None)

    visit(page, f"{url}/compare?runs={run_id}&keys=train/reverse_kl&keys=eval/seen_success")
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)
    assert sum(trace_lengths(page)) >= 2
    shoot(page, "10-libero-compare")

    visit(page, f"{url}/videos?runs={run_id}")
    assert_first_video_plays(page, 500)
    shoot(page, "11-libero-videos")
