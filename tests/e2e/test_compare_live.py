"""End to end, in a real browser: Compare while the selected runs change status (issue 12).

The test plays the worker itself, through the worker's own store functions (lifecycle + metric rows, as the
SQL sink writes them), so that runs start, log points and finish exactly when it says: 8 runs with long names
of a mixed sweep (objective x G x lr, two seeds), some queued, some running, some finished. Between every move
of a Compare control (runs box, metrics, x-axis, smoothing, grouping, band, metric filter, per-dimension chart,
live toggle) it advances the lab by a step -- a queued run starts, running runs log a point, one finishes --
and then checks in the DOM that the selection, the URL and every line of the success chart (its legend entries
and their point counts, computed from the store with the app's own grouping) are what they must be. A shared URL
then restores the same view in a new browser context. Screenshots at 1440 and 1024 px go to artifacts/dashboard/.
"""

from __future__ import annotations

import urllib.parse
import urllib.request

import numpy as np
import pytest

from browser_fixtures import browser, dashboard  # noqa: F401 - fixtures, used by name
from browser_pages import BROWSER_TESTS, settle, shoot
from browser_pages import choose as choose_option
from polling import wait_for

DIMS = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
SUCCESS_TITLE = "Success (train)"
"""Titles as Plotly keeps them (Streamlit's theme wraps them in <b>): compared by `in`."""

pytestmark = BROWSER_TESTS


# ============================================================================================ the lab, by hand
class HandLab:
    """Runs written through worker.lifecycle and worker.metric_rows, as a worker and its SQL sink would."""

    def __init__(self, settings):
        from worker.migrate import upgrade_to_head
        from worker.store import Store

        self.store = Store(settings)
        upgrade_to_head(self.store.engine)
        self.total: dict[int, int] = {}
        self.logged: dict[int, int] = {}

    def add(self, name: str, config: dict, status: str, points: int, total: int) -> int:
        from worker import lifecycle

        run_id = lifecycle.create_run(self.store, {**config, "name": name}, name=name, queue="cpu", total_steps=total)
        self.total[run_id], self.logged[run_id] = total, 0
        if status != "queued":
            lifecycle.claim(self.store, run_id, 1, "hand")
            self.log(run_id, points)
        if status == "finished":
            lifecycle.finish(self.store, run_id, 1, "finished", step=points)
        return run_id

    def log(self, run_id: int, points: int) -> None:
        """Steps logged+1 .. logged+points: every key, then the progress (one transaction, as the sink does)."""
        from worker import lifecycle
        from worker.metric_rows import MetricPoint, upsert_metrics

        start = self.logged[run_id]
        rows = []
        for step in range(start + 1, start + points + 1):
            value = (0.5 + 0.06 * run_id) * (1 - np.exp(-step / (2 + run_id % 4)))
            rows += [
                MetricPoint("train/success", step, float(value), 1.7e9 + step),
                MetricPoint("train/entropy", step, float(3 - value), 1.7e9 + step),
                MetricPoint("train/reverse_kl", step, float(1 / step), 1.7e9 + step),
                MetricPoint("time/env_steps", step, float(step * 128), 1.7e9 + step),
                MetricPoint("time/wall_seconds", step, float(step * 0.5), 1.7e9 + step),
            ]
            rows += [
                MetricPoint(f"train/reverse_kl/{dim}", step, float((d + 1) / step), 1.7e9 + step)
                for d, dim in enumerate(DIMS)
            ]
        with self.store.session() as session:
            upsert_metrics(session, run_id, rows)
            lifecycle.touch(session, run_id, 1, step=start + points, total=self.total[run_id])
        self.logged[run_id] = start + points

    def advance(self, api) -> None:
        """One tick: the first queued run starts, every running run logs a point, one that reached its total
        finishes."""
        from worker import lifecycle

        runs = {run.id: run for run in api.list_runs()}
        queued = sorted(i for i, run in runs.items() if run.status == "queued")
        if queued:
            lifecycle.claim(self.store, queued[0], 1, "hand")
        for run_id, run in runs.items():
            if run.status == "running" or (queued and run_id == queued[0]):
                self.log(run_id, 1)
                if self.logged[run_id] >= self.total[run_id]:
                    lifecycle.finish(self.store, run_id, 1, "finished", step=self.logged[run_id])


def sweep_configs() -> list[tuple[str, dict]]:
    """A mixed sweep: objective x G x lr, two seeds of the first setting; long names as people write them."""
    from opd_core.config import RunConfig

    settings = [
        ("reverse_kl", 8, 3e-4, 0),
        ("reverse_kl", 8, 3e-4, 1),
        ("forward_kl", 8, 3e-4, 0),
        ("hard_ce", 8, 3e-4, 0),
        ("reverse_kl", 4, 1e-4, 0),
        ("reverse_kl", 16, 1e-3, 0),
        ("forward_kl", 4, 1e-3, 0),
        ("reverse_kl_exact", 8, 3e-4, 0),
    ]
    out = []
    for index, (objective, group, lr, seed) in enumerate(settings):
        name = f"objective ablation {objective} G={group} lr={lr} seed {seed} (quick reproduction arm {index})"
        config = RunConfig(
            objective=objective,
            group_size=group,
            lr=lr,
            seed=seed,
            steps=40,
            teacher_checkpoint="/lab/teacher",
            tasks=["object/pick_red", "object/pick_blue"] if index % 2 else ["object/pick_red"],
        ).to_dict()
        out.append((name, config))
    return out


# ============================================================================================ fixtures
@pytest.fixture
def lab_settings(tmp_path):
    """An embedded lab in which no run goes stale: the hand-made runs have no worker beating for them."""
    from worker.settings import Settings

    return Settings(data_dir=tmp_path / "data", stale_after_seconds=3600.0)


# ============================================================================================ page helpers
def choose(page, label: str, option: str) -> None:
    choose_option(page, label, option)
    settle(page)


def chips(page) -> list[str]:
    """The Runs box's chips, as shown."""
    box = page.locator("[data-testid='stMultiSelect']").first
    return [text.strip() for text in box.locator("[data-tag]").all_inner_texts()]


def url_state(page) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)


def charts(page) -> list[dict]:
    """Every Plotly chart as drawn: its title and its legend lines with their point counts."""
    return page.locator(".js-plotly-plot").evaluate_all("""divs => divs.map(div => ({
        title: (div.layout && div.layout.title && div.layout.title.text) || '',
        lines: (div._fullData || []).filter(t => t.showlegend).map(t => [t.name, t._length || 0]),
        points: (div._fullData || []).reduce((n, t) => n + (t._length || 0), 0),
    }))""")


def expected_lines(api, run_ids: list[int], group_by: str) -> list[list]:
    """The success chart's legend lines as the app must draw them from the store now: the app's own grouping
    of the runs that logged the metric, each line as long as its longest member (steps 1..n)."""
    from app.figures import shorten_label
    from app.run_groups import compare_groups

    runs = [run for run in (api.get_run(i) for i in run_ids) if run is not None]
    logged = {run.id: run.step for run in runs}
    with_data = [run for run in runs if logged[run.id] > 0]
    return [
        [shorten_label(group.legend), max(logged[i] for i in group.run_ids)]
        for group in compare_groups(with_data, group_by)
    ]


def check_intact(page, api, run_ids: list[int], group_by: str, what: str) -> None:
    """After a move: all runs still chosen (chips and URL, by id), and the success chart catches up with the
    store (the fragment redraws it every 2 s)."""
    assert len(chips(page)) == len(run_ids), (what, chips(page))
    assert [chip.split(" ")[0] for chip in chips(page)] == [f"#{i}" for i in run_ids], what
    assert url_state(page).get("runs") == [str(i) for i in run_ids], (what, page.url)

    def caught_up():
        success = [chart for chart in charts(page) if SUCCESS_TITLE in chart["title"]]
        return success and sorted(success[0]["lines"]) == sorted(expected_lines(api, run_ids, group_by))

    try:
        wait_for(caught_up, 30, f"the success chart to show every line after {what}", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(
            f"{what}: drawn {charts(page)}, expected {expected_lines(api, run_ids, group_by)}"
        ) from exc


# ============================================================================================ the test
def test_compare_holds_its_selection_curves_and_url_while_runs_change_status(lab, lab_settings, dashboard, browser):
    url = dashboard
    hand = HandLab(lab_settings)
    statuses = ["finished", "running", "queued", "running", "queued", "finished", "running", "queued"]
    run_ids = [
        hand.add(name, config, status, points=6 if status == "finished" else 3, total=8)
        for (name, config), status in zip(sweep_configs(), statuses)
    ]
    query = "&".join(f"runs={i}" for i in run_ids)
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    page.goto(f"{url}/compare?{query}")
    settle(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    check_intact(page, lab, run_ids, "settings", "the first visit")

    def move(what: str, action, group_by: str = "settings") -> None:
        hand.advance(lab)  # the lab goes on while the researcher works: statuses change under the page
        action()
        settle(page)
        check_intact(page, lab, run_ids, group_by, what)

    # runs box: take the last run out and put it back (it comes back at the end, by id)
    def runs_box():
        box = page.locator("input[aria-label='Runs']")
        box.click()
        box.press("Backspace")
        settle(page)
        assert len(chips(page)) == len(run_ids) - 1 and url_state(page)["runs"] == [str(i) for i in run_ids[:-1]]
        box.click()
        box.fill(f"#{run_ids[-1]} ")
        page.get_by_role("option", name=f"#{run_ids[-1]} objective ablation", exact=False).first.click()
        page.keyboard.press("Escape")

    move("the runs box", runs_box)

    def metrics():
        box = page.locator("input[aria-label='Metrics']")
        box.click()
        box.fill("reverse_kl")
        page.get_by_role("option", name="train/reverse_kl", exact=True).click()
        page.keyboard.press("Escape")

    move("the metrics box", metrics)
    assert "train/reverse_kl" in url_state(page)["keys"]
    assert any("Reverse KL (train)" in chart["title"] for chart in charts(page))

    move("the x-axis", lambda: page.get_by_text("env steps", exact=True).click())
    assert url_state(page)["x"] == ["env_steps"]

    def smoothing():
        thumb = page.get_by_role("slider").first
        thumb.focus()
        for _ in range(30):
            thumb.press("ArrowRight")

    for _ in range(2):  # the reported bug: moving the EMA slider after statuses changed
        move("the EMA slider", smoothing)
    assert float(url_state(page)["smooth"][0]) > 0
    assert any(chart["points"] > sum(n for _, n in chart["lines"]) for chart in charts(page))  # raw curves drawn

    move("grouping", lambda: choose(page, "Group by", "objective"), group_by="objective")
    assert url_state(page)["group"] == ["objective"]
    move("the band", lambda: choose(page, "Band", "std. error"), group_by="objective")
    move("grouping again", lambda: choose(page, "Group by", "none (per run)"), group_by="run")

    def metric_filter():
        field = page.locator("input[aria-label='Filter metrics']")
        field.fill("entropy")
        field.press("Enter")

    move("the metric filter", metric_filter, group_by="run")
    assert url_state(page)["filter"] == ["entropy"]
    assert any("Entropy (train)" in chart["title"] for chart in charts(page))

    move("the per-dimension chart", lambda: choose(page, "Per dimension", "reverse KL"), group_by="run")
    dims = [chart for chart in charts(page) if "per action dimension" in chart["title"]]
    assert dims and len(dims[0]["lines"]) == len([i for i in run_ids if lab.get_run(i).step > 0])

    live = page.get_by_text("Live", exact=True)
    move("the live toggle (off)", live.click, group_by="run")
    assert url_state(page)["live"] == ["0"]
    move("the live toggle (on)", live.click, group_by="run")
    assert url_state(page)["live"] == ["1"]

    # the runs finish, and the chips and table say so (no stale status anywhere)
    for _ in range(12):
        hand.advance(lab)
    assert all(lab.get_run(i).status == "finished" for i in run_ids)
    wait_for(lambda: page.get_by_text("No selected run is active").count() > 0, 30, "the page to see the end")
    check_intact(page, lab, run_ids, "run", "every run finishing")
    assert not any("queued" in chip or "running" in chip for chip in chips(page))

    # --- a shared URL restores the view in a new browser context (no session state shared)
    shared = page.url
    drawn = sorted(chart["title"] for chart in charts(page))
    other = browser.new_context(viewport={"width": 1024, "height": 1100}).new_page()
    other.goto(shared)
    settle(other)
    wait_for(lambda: sorted(chart["title"] for chart in charts(other)) == drawn, 60, "the shared view's charts")
    assert url_state(other) == url_state(page)
    check_intact(other, lab, run_ids, "run", "the shared URL")
    assert other.locator("input[aria-label='Group by']").input_value() == "none (per run)"
    assert other.locator("input[aria-label='Filter metrics']").input_value() == "entropy"

    # --- pictures for a person: 1440 and 1024 px, seeds folded and grouped, with the mixed sweep's legend
    settings_view = f"{url}/compare?{query}&keys=train/success&keys=train/reverse_kl&smooth=0.6&dims=reverse_kl"
    for width, tab in ((1440, page), (1024, other)):
        tab.set_viewport_size({"width": width, "height": 2400})  # Streamlit scrolls inside: a tall window
        tab.goto(settings_view)
        settle(tab)
        tab.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)
        tab.wait_for_timeout(500)
        shoot(tab, f"20-compare-sweep-{width}")
        tab.goto(settings_view.replace("smooth=0.6", "group=objective&band=sem&filter=entropy"))
        settle(tab)
        tab.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)
        tab.wait_for_timeout(500)
        shoot(tab, f"21-compare-grouped-{width}")
