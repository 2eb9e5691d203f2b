"""A small read-only table as plain HTML, for pages whose first paint should not wait for the data grid.

`st.dataframe` draws with a canvas data grid whose JavaScript (about 1.3 MB with its Arrow decoding) a first
visit must load and compile before the grid and anything after it appears; Compare's config diff table is a few
rows of text, so it is drawn as an HTML table instead (scrolls sideways when wide, links open a run's page).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

STYLE = """<style>
.opd-table { overflow-x: auto; max-height: 24rem; overflow-y: auto; margin-bottom: 0.5rem;
  border: 1px solid rgba(49, 51, 63, 0.1); border-radius: 0.5rem; }
.opd-table table { border-collapse: collapse; width: 100%; font-size: 0.875rem; }
.opd-table th { position: sticky; top: 0; background: #f0f2f6; text-align: left; font-weight: 600; }
.opd-table th, .opd-table td { padding: 0.25rem 0.6rem; white-space: nowrap;
  border-bottom: 1px solid rgba(49, 51, 63, 0.1); }
.opd-table td.number { text-align: right; font-variant-numeric: tabular-nums; }
</style>"""


def _cell(value: Any, link_text: re.Pattern | None) -> str:
    if value is None:
        return "<td></td>"
    if link_text is not None:
        match = link_text.search(str(value))
        text = f"#{match.group(1)}" if match else str(value)
        return f'<td><a href="{html.escape(str(value))}" target="_self">{html.escape(text)}</a></td>'
    if isinstance(value, bool):
        return f"<td>{value}</td>"
    if isinstance(value, (int, float)):
        return (
            f'<td class="number">{value:.6g}</td>' if isinstance(value, float) else f'<td class="number">{value}</td>'
        )
    return f"<td>{html.escape(str(value))}</td>"


def html_table(rows: Sequence[Mapping[str, Any]], links: Mapping[str, str] | None = None) -> str:
    """`rows` as an HTML table, columns in first-seen order; a column named in `links` holds URLs, shown as
    `#<first group of the pattern>` (e.g. links={"run": r"id=(\\d+)"} shows "/run?id=3" as "#3")."""
    patterns = {name: re.compile(pattern) for name, pattern in (links or {}).items()}
    columns = list(dict.fromkeys(name for row in rows for name in row))
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(name), patterns.get(name)) for name in columns) + "</tr>" for row in rows
    )
    return f'{STYLE}<div class="opd-table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
