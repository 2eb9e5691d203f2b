"""Waiting in tests for what another process does (a worker, the dashboard), with a deadline that names it."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Call `condition` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
