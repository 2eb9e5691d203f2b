"""What the browser tests share: where Chromium is, the marks that skip them (saying why) without it or without
Playwright, and the moves a researcher makes on a Streamlit page (visit, wait for it to settle, choose, type,
photograph). The fixtures that start the dashboard and the browser are in tests/browser_fixtures.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "artifacts" / "dashboard"
"""Screenshots for a person to look at (ignored by git)."""
CHROMIUM = os.environ.get("OPD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
"""Streamlit's app root once a script run has finished."""

BROWSER_TESTS = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (or set OPD_CHROMIUM)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed (pip install -r requirements.txt)",
    ),
]
"""A browser test module's `pytestmark`."""


def visit(page, url: str) -> None:
    page.goto(url)
    settle(page)


def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run that the last action caused has finished and its elements are drawn."""
    page.wait_for_timeout(300)  # the run state flips to "running" a moment after a click
    page.wait_for_selector(READY, timeout=timeout_ms)
    page.wait_for_timeout(300)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def choose(page, label: str, option: str) -> None:
    """Take one option of a selectbox."""
    page.locator(f"input[aria-label='{label}']").click()
    page.get_by_role("option", name=option, exact=True).click()


def type_into(page, label: str, value: str) -> None:
    field = page.locator(f"input[aria-label='{label}']")
    field.fill(value)
    field.press("Tab")


def trace_lengths(page) -> list[int]:
    """Points in each trace of the first chart on the page, as Plotly drew them (its decoded full data: the
    figure JSON carries arrays base64-encoded)."""
    return page.locator(".js-plotly-plot").first.evaluate("div => (div._fullData || []).map(t => t._length || 0)")
