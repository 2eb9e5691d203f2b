"""End to end, in a real browser: a fresh lab (empty store, a temporary data directory, only the shipped
checkpoints) launches the objective-ablation preset on the Launch form's defaults, and its runs appear on Runs
and draw curves on Compare with the shipped teacher as the reference line; every page opens at its own URL.

Then the store is filled with many runs with long names, and Overview, Launch and Results are photographed at
1440 and 1024 px wide into artifacts/dashboard/ for a person to look at. The dashboard and browser
fixtures are tests/browser_fixtures.py's (Chromium through Playwright; skipped, saying why, without them).
"""

from __future__ import annotations

from app.main import PAGES
from browser_fixtures import browser, dashboard, lab_settings, page  # noqa: F401 - fixtures, used by name
from browser_pages import ARTIFACTS, BROWSER_TESTS, settle, shoot, trace_lengths, type_into, visit
from polling import wait_for

pytestmark = BROWSER_TESTS

TINY = (
    ("steps", 2),
    ("batch_tasks", 1),
    ("group_size", 2),
    ("eval_every", 2),
    ("save_every", 2),
    ("eval_init_states", 1),
    ("videos_per_eval", 0),
    ("max_episode_steps", 40),
)
"""Sizes that keep each of the preset's three runs to seconds (evaluation included)."""
LONG_NAME = "a rather long run name that a researcher typed to remember what this one was about"


def test_objective_ablation_from_a_fresh_store_with_only_the_shipped_checkpoints(
    lab, lab_settings, dashboard, page, start_worker
):
    url = dashboard
    worker = start_worker(lab_settings)
    assert lab.list_runs() == []

    # --- every page at its own URL (the default page too, not "Page not found")
    for spec in PAGES:
        visit(page, f"{url}/{spec.name}")
        assert page.get_by_text("Page not found").count() == 0, spec.name
        page.locator("h1").first.wait_for(timeout=30_000)
    visit(page, f"{url}/results")
    assert page.locator("h1").first.inner_text().strip() == "Results"
    visit(page, f"{url}/overview")
    assert page.locator("h1").first.inner_text().strip() == "OPD Lab"

    # --- Launch on its defaults: the shipped teacher and student are chosen, only the sizes are made tiny
    visit(page, f"{url}/launch")
    assert selected(page, "teacher_checkpoint").startswith("object teacher · shipped")
    assert selected(page, "student_checkpoint").startswith("object 1-demo student · shipped")
    for label, value in TINY:
        type_into(page, label, str(value))
    page.get_by_test_id("stFormSubmitButton").filter(has_text="Objective ablation").first.click()
    settle(page)
    assert page.get_by_text("Not launched").count() == 0, page.locator("[data-testid='stAlert']").all_inner_texts()
    page.get_by_text("Objective ablation: 3 runs queued").wait_for(timeout=30_000)
    runs = sorted(lab.list_runs(), key=lambda run: run.id)
    assert [run.config["objective"] for run in runs] == ["reverse_kl", "forward_kl", "hard_ce"]
    assert all(run.config["teacher_checkpoint"].endswith("object/teacher") for run in runs)
    shoot(page, "20-launch-objective-ablation-queued")

    # --- Runs lists them, queued or running
    visit(page, f"{url}/runs")
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
    table = wait_for(
        lambda: all(run.name in (text := grid_text(page)) for run in runs) and text,
        60,
        "the preset's runs in the Runs table",
    )
    # queued, running, or already finished: on a quiet machine a tiny run takes a second or two
    assert any(status in table for status in ("queued", "running", "finished")), table
    shoot(page, "21-runs-objective-ablation")

    # --- Compare draws their curves, with the shipped teacher's success as the reference line
    wait_for(lambda: lab.metrics([runs[0].id], ["train/success"]), 300, "the first run's first point")
    visit(page, f"{url}/compare?" + "&".join(f"runs={run.id}" for run in runs))
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(timeout=120_000)
    wait_for(lambda: sum(trace_lengths(page)) > 0, 120, "a curve on Compare")
    annotations = chart.evaluate("div => (div.layout.annotations || []).map(a => a.text)")
    assert any(text.startswith("teacher (teacher-object)") for text in annotations), annotations
    shoot(page, "22-compare-objective-ablation")

    wait_for(
        lambda: all(lab.get_run(run.id).status in ("finished", "failed", "crashed") for run in runs),
        600,
        "the preset's runs to end",
    )
    assert [lab.get_run(run.id).status for run in runs] == ["finished"] * 3, [lab.get_run(r.id).error for r in runs]
    worker.stop()  # what follows is queued only, to be photographed

    # --- many runs with long names, then Overview, Launch and Results at two widths
    for index in range(14):
        lab.launch(
            {
                "name": f"{LONG_NAME} #{index}",
                "pipeline": "grpo",
                "steps": 500 + index,
                "student_checkpoint": runs[0].config["student_checkpoint"],
            },
            tags=["screenshot"],
        )
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 1000})
        visit(page, f"{url}/overview")
        page.get_by_text("more on the Runs page").wait_for(timeout=60_000)
        shoot(page, f"30-overview-many-runs-{width}")
        visit(page, f"{url}/launch")
        page.locator("input[aria-label='teacher_checkpoint']").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # the form's widgets are drawn a moment after the script run ends
        shoot(page, f"31-launch-{width}")
        page.locator("input[aria-label='teacher_checkpoint']").scroll_into_view_if_needed()
        page.locator("input[aria-label='teacher_checkpoint']").click()  # its list: every checkpoint by name
        page.get_by_role("option").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / f"31-launch-checkpoints-{width}.png"))
        page.keyboard.press("Escape")
        visit(page, f"{url}/results")
        page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
        wait_for(lambda: "Teacher (reference)" in grid_text(page), 60, "the teacher row on Results")
        shoot(page, f"32-results-{width}")
    assert (ARTIFACTS / "32-results-1024.png").is_file()


def selected(page, label: str) -> str:
    """The text a selectbox shows as its value."""
    box = page.locator("[data-testid='stSelectbox']").filter(has=page.get_by_text(label, exact=True)).first
    return box.evaluate(
        "el => [...el.querySelectorAll('input')].map(i => i.value).join(' ').trim() || "
        "el.querySelector('[data-baseweb=\"select\"]').innerText"
    ).strip()


def grid_text(page) -> str:
    """st.dataframe draws on a canvas; Glide keeps its cells in a hidden accessible table beside it."""
    return " ".join(
        page.locator("[data-testid='stDataFrame'] table").evaluate_all("tables => tables.map(t => t.textContent)")
    )
