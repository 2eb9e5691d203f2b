"""The Inspector in a real browser (headless Chromium through Playwright) on a real run: a tiny run from the
shipped object student and teacher, made through the lab and executed in this process, then opened at a frame of
its filmed rollout. Screenshots at 1440 and 1024 px go to artifacts/dashboard/."""

from __future__ import annotations

import re
from urllib.parse import quote

from browser_fixtures import browser, dashboard, lab_settings, page  # noqa: F401 - fixtures, used by name
from browser_pages import BROWSER_TESTS, settle, shoot, visit
from test_inspector_api import SEEN, tiny_run

pytestmark = BROWSER_TESTS

FRAME_SLIDER = "Frame (the action taken at this frame of the video)"
LONG_NAME = "reverse-KL distillation of the 1-demo object student from the shipped 50-demo object teacher"


def tall(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its own container, so grow the window to fit."""
    width = page.viewport_size["width"]
    height = page.locator("[data-testid='stMain']").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": width, "height": max(1000, int(height) + 40)})
    page.wait_for_timeout(500)  # Plotly redraws at the new size
    shoot(page, name)
    page.set_viewport_size({"width": width, "height": 1000})


def plot_facts(page) -> dict:
    """What Plotly drew in the first chart: subplot titles, and how many traces have points."""
    return page.locator(".js-plotly-plot").first.evaluate("""div => ({
        titles: (div.layout.annotations || []).map(a => a.text),
        traces: (div._fullData || []).filter(t => (t._length || 0) > 0).map(t => t.name)})""")


def test_the_inspector_shows_seven_panels_for_a_frame_of_a_real_rollout(lab, dashboard, page):
    url = dashboard
    run_id = tiny_run(lab, name=LONG_NAME)
    task = SEEN[0]
    visit(page, f"{url}/inspector?run={run_id}&step=1&task={quote(task, safe='')}&frame=3")
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    facts = plot_facts(page)
    dims = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert [re.match(r"<b>(\w+)</b>", title).group(1) for title in facts["titles"]] == dims
    assert all("RKL" in title and "FKL" in title for title in facts["titles"])
    assert facts["traces"].count("student") == 7 and facts["traces"].count("teacher") == 7
    page.get_by_test_id("stImage").first.wait_for()
    page.get_by_text("The replay took the filmed episode's steps and outcome").wait_for()
    table = page.locator(".opd-table").first
    table.wait_for()
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1"), "the numbers table scrolls at 1440 px"
    page.get_by_text("Frame 3 of", exact=False).first.wait_for()
    tall(page, "inspector-1440")

    page.locator(f"input[type='range'][aria-label='{FRAME_SLIDER}']").focus()  # the slider's own input
    page.keyboard.press("ArrowRight")
    settle(page)
    page.get_by_text("Frame 4 of", exact=False).first.wait_for(timeout=60_000)
    assert "frame=4" in page.url and f"run={run_id}" in page.url

    page.set_viewport_size({"width": 1024, "height": 1000})
    visit(page, page.url)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert len(plot_facts(page)["titles"]) == 7
    table = page.locator(".opd-table").first
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1"), "the numbers table scrolls at 1024 px"
    tall(page, "inspector-1024")


def test_a_grpo_run_is_inspected_against_the_shipped_teacher(lab, dashboard, page):
    run_id = tiny_run(lab, pipeline="grpo", teacher_checkpoint="", name="GRPO from the 1-demo student")
    visit(page, f"{dashboard}/inspector?run={run_id}")
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert len(plot_facts(page)["titles"]) == 7
    page.get_by_text("Teacher: shipped tabletop object teacher").wait_for()
    tall(page, "inspector-grpo-1440")
