"""The dashboard binds to this machine unless told otherwise."""

import json
import sys
import tomllib
from pathlib import Path

import app.__main__ as entry

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_config_file_binds_to_localhost():
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False


def test_python_m_app_binds_to_localhost_and_lets_an_explicit_option_win(monkeypatch):
    seen = []
    monkeypatch.setattr(entry.cli, "main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["app"])
    entry.main()
    entry.main(["--server.address", "0.0.0.0"])
    default, explicit = seen
    assert default[:3] == ["streamlit", "run", str(REPO_ROOT / "app" / "main.py")]
    assert default[default.index("--server.address") + 1] == "127.0.0.1"
    # click keeps the last value of a repeated option: the researcher's explicit choice comes last
    assert explicit[-2:] == ["--server.address", "0.0.0.0"]


def _routes_script(default: str) -> None:
    """Build the pages as app.main does and show how st.navigation would route them (st.Page needs a run)."""
    import json

    import streamlit as st

    from app import navigation
    from app.main import PAGES

    pages = navigation.build(PAGES, default)
    st.text(
        json.dumps(
            {
                "paths": navigation.url_paths(pages),
                "visible": [page.title for page in pages if page.visibility == "visible"],
                "link": navigation.page(default).url_path,
            }
        )
    )


def test_every_page_has_its_own_url_the_default_page_too():
    """st.navigation serves the default page at "/" only: /overview must still open the Overview."""
    from streamlit.testing.v1 import AppTest

    from app.main import PAGES

    titles = {spec.name: spec.title for spec in PAGES}
    for default in ("overview", "compare"):
        at = AppTest.from_function(_routes_script, kwargs={"default": default}, default_timeout=30).run()
        routes = json.loads(at.text[0].value)
        assert routes["paths"][""] == routes["paths"][default] == titles[default]
        assert set(titles) <= set(routes["paths"])
        assert routes["visible"] == list(titles.values())  # one menu entry per page
        assert routes["link"] == ""  # links to the default page go to "/"


def test_the_entry_point_runs_with_the_twin_default_page():
    from streamlit.testing.v1 import AppTest

    from app import backend
    from test_app_fakes import FakeApi

    backend.install(FakeApi())
    try:
        at = AppTest.from_file(str(REPO_ROOT / "app" / "main.py"), default_timeout=30).run()
        assert not at.exception and at.title[0].value == "OPD Lab"
    finally:
        backend.uninstall()
