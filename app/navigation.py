"""The page registry: built once per script run by app.main, used by pages to link to each other.

Every page answers at its own URL (/overview, /launch, ...), the default page too: st.navigation serves the
default page at the root URL only (its url path is always ""), so it is registered a second time, hidden from
the menu, under its own name. Links go to the visible page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    name: str
    title: str
    icon: str
    render: Callable[[], None]


DEFAULT_SUFFIX = "-home"
"""The default page's internal url path is `<name>-home` (never shown: Streamlit serves it at "/"), which leaves
`<name>` free for its hidden twin."""

_pages: dict[str, st.Page] = {}


def build(specs: list[PageSpec], default: str) -> list:
    """st.Page objects for the specs (url path = name), plus the hidden twin of the default page that answers
    at /<default>; remembered so that `page(name)` can link to them."""
    _pages.clear()
    pages = []
    for spec in specs:
        is_default = spec.name == default
        url_path = spec.name + DEFAULT_SUFFIX if is_default else spec.name
        _pages[spec.name] = st.Page(
            spec.render, title=spec.title, icon=spec.icon, url_path=url_path, default=is_default
        )
        pages.append(_pages[spec.name])
        if is_default:
            pages.append(
                st.Page(spec.render, title=spec.title, icon=spec.icon, url_path=spec.name, visibility="hidden")
            )
    return pages


def page(name: str):
    """The registered page called `name` (for st.page_link and st.switch_page)."""
    return _pages[name]


def url_paths(pages: list) -> dict[str, str]:
    """URL path -> page title of the built pages, as st.navigation routes them ("" is the root URL)."""
    return {page.url_path: page.title for page in pages}
