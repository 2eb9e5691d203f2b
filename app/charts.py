"""Plotly figures on the page, drawn by plotly.js's basic bundle instead of Streamlit's full one.

`st.plotly_chart` ships the full plotly.js (4.7 MB of JavaScript, every trace type), which a first visit loads and
compiles only once the page's script has sent its first chart, after everything above it. Every chart of this
dashboard but the Sweep view's parallel coordinates uses only scatter and bar traces, which plotly.js's basic
bundle (1.2 MB, `app/static/plotly-basic.min.js`, the plotly package's own plotly.js version: `PLOTLY_JS_VERSION`)
draws. `preload_bundle` starts loading it with the page's shell; `show_figure` mounts a figure through a Streamlit
v2 component (no iframe: the chart's `.js-plotly-plot` div lives in the page like `st.plotly_chart`'s, and a rerun
with a new figure updates it in place with `Plotly.react`). It falls back to `st.plotly_chart` for other trace
types, and when the bundle is not served (Streamlit's static file serving, `server.enableStaticServing`, is set by
`python -m app` and .streamlit/config.toml).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app.figures import PLOTLY_CONFIG

PLOTLY_JS_VERSION = "4.1.1"
"""The version of the vendored basic bundle; tests check it equals the plotly package's plotly.js."""
BASIC_TRACES = frozenset({"scatter", "bar", "pie"})
"""The trace types plotly.js's basic bundle draws."""
DEFAULT_HEIGHT = 450
"""Plotly's own default figure height, used when a figure sets none."""
PAGE_LAYOUT = {
    # Streamlit's look without its template (whose placeholder colours only its own chart element replaces)
    "template": "plotly_white",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": '"Source Sans", sans-serif', "color": "#31333F"},
}

_LOADER_JS = """
function plotly() {
  // one load per page, shared by every chart and the preloader (window: each component's module is its own)
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__opdPlotlyLoading) {
    window.__opdPlotlyLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "app/static/plotly-basic.min.js";  // relative: works under a server.baseUrlPath too
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__opdPlotlyLoading = null;
        reject(new Error("could not load app/static/plotly-basic.min.js"));
      };
      document.head.appendChild(script);
    });
  }
  return window.__opdPlotlyLoading;
}
"""

_RENDERER_JS = (
    _LOADER_JS
    + """
export default function (component) {
  const { data, parentElement } = component;
  let chart = parentElement.querySelector("div.opd-chart");
  if (!chart) {
    chart = document.createElement("div");
    chart.className = "opd-chart";
    chart.style.width = "100%";
    parentElement.appendChild(chart);
  }
  if (chart.dataset.version === data.version) return;  // a rerun with the same figure: nothing to redraw
  chart.dataset.version = data.version;
  chart.style.height = data.height + "px";
  plotly()
    .then((Plotly) => Plotly.react(chart, data.figure.data, data.figure.layout, data.config))
    .catch((error) => { chart.textContent = "The chart could not be drawn: " + error.message; });
}
"""
)

_PRELOADER_JS = (
    _LOADER_JS
    + """
export default function () {
  plotly().catch(() => {});  // a chart that then fails to load says so itself
}
"""
)

_components: dict[str, Any] = {}


def _component(name: str, js: str):
    # registered on first use, not at import (importing a module changes no state)
    if name not in _components:
        _components[name] = st.components.v2.component(name, js=js, isolate_styles=False)
    return _components[name]


def preload_bundle() -> None:
    """Start loading and compiling the bundle as soon as the page's shell is drawn, while the page's script
    still computes its figures (a first visit has no cached copy: 1.2 MB to compile)."""
    if _bundle_served():
        _component("opd_plotly_preload", _PRELOADER_JS)(key="opd_plotly_preload")


def _bundle_served() -> bool:
    # off when Streamlit was started without this project's settings (e.g. `streamlit run` from elsewhere)
    return bool(st.get_option("server.enableStaticServing"))


def is_basic(figure: go.Figure) -> bool:
    """Whether plotly.js's basic bundle can draw every trace of `figure`."""
    return all(trace.type in BASIC_TRACES for trace in figure.data)


def page_json(figure: go.Figure) -> str:
    """The figure as plotly.js takes it (JSON, numpy arrays as typed-array specs), styled like the page, sized to
    its container's width."""
    styled = go.Figure(figure)  # a copy: the caller's figure (also exported as PNG/SVG) keeps its layout
    styled.update_layout(**PAGE_LAYOUT, autosize=True, width=None)
    return styled.to_json()


def chart_config(filename: str) -> dict[str, Any]:
    """plotly.js options: no logo; the camera button saves a PNG at twice the screen's size as `filename`.png."""
    return {
        **PLOTLY_CONFIG,
        "toImageButtonOptions": {**PLOTLY_CONFIG["toImageButtonOptions"], "filename": filename.replace("/", "_")},
    }


def show_figure(figure: go.Figure, *, key: str, filename: str) -> None:
    """Draw `figure` at the container's width; its camera button saves `filename`.png."""
    config = chart_config(filename)
    if not (is_basic(figure) and _bundle_served()):
        st.plotly_chart(figure, config=config, key=key)
        return
    height = int(figure.layout.height or DEFAULT_HEIGHT)
    drawn = page_json(figure)
    # the JSON text itself identifies the drawing (the config follows from `filename`): no second serialisation
    version = hashlib.blake2b(f"{drawn}|{filename}|{height}".encode(), digest_size=8).hexdigest()
    data = {"figure": json.loads(drawn), "config": {**config, "responsive": True}, "height": height, "version": version}
    _component("opd_plotly_basic", _RENDERER_JS)(data=data, key=key)
