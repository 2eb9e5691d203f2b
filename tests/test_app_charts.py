"""The charts' renderer (app/charts.py) and Compare's HTML table (app/html_table.py), without a browser; the
browser tests (tests/e2e) check that the charts are drawn with their points."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline
import pytest

from app.charts import BASIC_TRACES, PLOTLY_JS_VERSION, chart_config, is_basic, page_json
from app.html_table import html_table

BUNDLE = Path(__file__).resolve().parent.parent / "app" / "static" / "plotly-basic.min.js"


def test_the_vendored_bundle_is_the_plotly_packages_plotly_js_version():
    header = BUNDLE.read_text(encoding="utf-8")[:300]
    found = re.search(r"plotly\.js \(basic - minified\) v(\S+)", header)
    assert found, header
    assert found.group(1) == PLOTLY_JS_VERSION == plotly.offline.get_plotlyjs_version()


def test_basic_traces_go_to_the_light_renderer_and_others_fall_back():
    assert is_basic(go.Figure([go.Scatter(y=[1, 2]), go.Bar(y=[3])]))
    assert not is_basic(go.Figure(go.Parcoords(dimensions=[{"values": [1, 2]}])))
    assert not is_basic(go.Figure([go.Scatter(y=[1]), go.Heatmap(z=[[1]])]))
    assert {"scatter", "bar"} <= BASIC_TRACES


def test_page_figure_keeps_the_callers_figure_and_drops_streamlits_placeholder_template():
    import plotly.io as pio

    pio.templates["placeholder"] = go.layout.Template(layout={"paper_bgcolor": "#000038"})
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0.5, 0.75], name="run"), layout={"template": "placeholder"})
    figure.update_layout(width=640, height=300)
    drawn = json.loads(page_json(figure))
    assert "#000038" not in str(drawn)
    assert drawn["layout"]["autosize"] is True and "width" not in drawn["layout"]
    assert drawn["layout"]["height"] == 300
    assert figure.layout.width == 640  # the caller's figure (also exported) is untouched
    trace = drawn["data"][0]
    assert trace["name"] == "run" and trace["type"] == "scatter"


def test_chart_config_names_the_png():
    config = chart_config("train/success")
    assert config["toImageButtonOptions"]["filename"] == "train_success"
    assert config["displaylogo"] is False


def test_html_table_escapes_text_and_links_runs():
    rows = [
        {"run": "/run?id=3", "name": "<b>sweep</b> & co", "lr": 0.0003, "G": 8, "note": None},
        {"run": "/run?id=12", "name": "other", "extra": True},
    ]
    table = html_table(rows, links={"run": r"id=(\d+)"})
    assert '<a href="/run?id=3" target="_self">#3</a>' in table
    assert '<a href="/run?id=12" target="_self">#12</a>' in table
    assert "&lt;b&gt;sweep&lt;/b&gt; &amp; co" in table and "<b>sweep" not in table
    headers = re.findall(r"<th>(.*?)</th>", table)
    assert headers == ["run", "name", "lr", "G", "note", "extra"]
    assert '<td class="number">0.0003</td>' in table and '<td class="number">8</td>' in table
    assert table.count("<tr>") == 3  # header + 2 rows, the missing cells empty


@pytest.mark.parametrize("value", [float("nan"), 1e-12])
def test_html_table_numbers_are_short(value):
    assert f'<td class="number">{value:.6g}</td>' in html_table([{"x": value}])
