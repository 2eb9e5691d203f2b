"""Fixtures of the browser tests: the lab's settings, the dashboard as a researcher starts it, and headless
Chromium through Playwright (imported only here, so that a machine without it collects and skips the tests).
Each tests/e2e module imports them by name: a conftest.py there would shadow tests/conftest.py, whose helpers
other tests import. `lab` (worker.api on these settings) comes from tests/conftest.py."""

from __future__ import annotations

import os

import pytest

from browser_pages import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, shoot
from dashboard_server import running_dashboard


@pytest.fixture
def lab_settings(tmp_path):
    """One embedded lab (SQLite + filesystem broker) with short heartbeats, so that cancels land quickly."""
    from worker.settings import Settings

    return Settings(
        data_dir=tmp_path / "data", stale_after_seconds=30.0, heartbeat_seconds=0.5, cancel_poll_seconds=0.1
    )


@pytest.fixture
def dashboard(lab_settings, tmp_path):
    """The dashboard as a researcher starts it (`python -m app`, bound to 127.0.0.1) on a free port: its URL."""
    env = {**os.environ, **lab_settings.to_env(), "PYTHONPATH": str(REPO_ROOT)}
    with running_dashboard(env, tmp_path / "streamlit.log") as server:
        yield server.url


@pytest.fixture
def browser():
    """Headless Chromium, for a test that opens several contexts (fresh caches, other widths)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    """A 1440 px wide tab; photographed as 99-failure when the test fails."""
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    yield tab
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        shoot(tab, "99-failure")  # what the browser showed when the test gave up
