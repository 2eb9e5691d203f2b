"""Reading the dashboard's HTML tables (app/html_table.py) back in AppTests."""

from __future__ import annotations

import html
import re


def read_html_table(at, marker: str = "opd-table", index: int = 0) -> dict[str, list[str]]:
    """The `index`-th st.html table of the page as columns of cell texts (a link cell as its URL)."""
    bodies = [element.value for element in at.html if marker in element.value]
    body = bodies[index]
    headers = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", body)]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)[1:]]

    def text(cell: str) -> str:
        link = re.search(r'href="([^"]*)"', cell)
        return html.unescape(link.group(1) if link else cell)

    return {name: [text(row[i]) for row in rows] for i, name in enumerate(headers)}
