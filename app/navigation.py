"""The page registry: built once per script run by app.main, used by pages to link to each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    name: str
    title: str
    icon: str
    render: Callable[[], None]


_pages: dict[str, st.Page] = {}


def build(specs: list[PageSpec], default: str) -> list:
    """st.Page objects for the specs (url path = name), remembered so that `page(name)` can link to them."""
    _pages.clear()
    _pages.update({spec.name: st.Page(spec.render, title=spec.title, icon=spec.icon, url_path=spec.name,
                                      default=spec.name == default) for spec in specs})
    return list(_pages.values())


def page(name: str):
    """The registered page called `name` (for st.page_link and st.switch_page)."""
    return _pages[name]
