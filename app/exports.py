"""Figures as files made on the server: PNG and SVG download buttons under a chart.

The browser's camera button saves what is on screen; these buttons render the same Plotly figure on the server
with kaleido (which drives a headless Chromium: Debian's `chromium`, found on PATH or through BROWSER_PATH), at a
fixed size and a white background, so that a figure for a paper does not depend on the window it was seen in.
The file is made when the button is clicked (a few seconds: kaleido starts a browser), never on every rerun.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
EXPORT_WIDTH = 1200
"""Pixels of the exported figure (PNG at scale 2: 2400 wide); its height is the figure's own, or 500."""
PNG_SCALE = 2
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def exporter_problem() -> str | None:
    """Why figures cannot be rendered on this server (None when they can)."""
    if importlib.util.find_spec("kaleido") is None:
        return "kaleido is not installed (pip install -r requirements.txt)"
    if not _browser():
        return "no Chromium found for kaleido (apt-get install chromium, or set BROWSER_PATH)"
    return None


def _browser() -> str | None:
    configured = os.environ.get("BROWSER_PATH")
    if configured and os.path.isfile(configured):
        return configured
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def figure_bytes(figure: go.Figure, fmt: str, width: int = EXPORT_WIDTH, height: int | None = None) -> bytes:
    """The figure as a PNG or SVG file, rendered by kaleido; a ValueError names an unknown format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}: use one of {', '.join(FORMATS)}")
    browser = _browser()
    if browser and not os.environ.get("BROWSER_PATH"):
        os.environ["BROWSER_PATH"] = browser  # kaleido's browser finder reads it
    figure = go.Figure(figure)  # a copy: the template below must not leak into the page's figure
    figure.update_layout(template="plotly_white")
    height = height or int(figure.layout.height or 500)
    return figure.to_image(format=fmt, width=width, height=height, scale=PNG_SCALE if fmt == "png" else 1)


def download_buttons(figure: go.Figure, name: str, key: str) -> None:
    """ "PNG" and "SVG" download buttons for `figure`, saved as `opd-<name>.<format>`; a caption saying why when
    this server cannot render figures."""
    problem = exporter_problem()
    row = st.container(horizontal=True, vertical_alignment="center")
    for fmt in FORMATS:
        row.download_button(
            f"{fmt.upper()}",
            _deferred(go.Figure(figure), fmt),
            file_name=f"opd-{name}.{fmt}",
            mime=FORMATS[fmt],
            key=f"{key}_{fmt}",
            on_click="ignore",
            icon=":material/download:",
            disabled=problem is not None,
            help=problem or f"Download this figure as {fmt.upper()}, rendered on the server",
        )
    if problem:
        row.caption(f"Server-side export unavailable: {problem}")


def _deferred(figure: go.Figure, fmt: str) -> Callable[[], bytes]:
    return lambda: figure_bytes(figure, fmt)
