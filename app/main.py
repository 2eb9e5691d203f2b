"""The dashboard's entry point:  streamlit run app/main.py  (binds to 127.0.0.1, see .streamlit/config.toml).

st.navigation over one st.Page per view; every page is a small function in app/views that reads the lab
through worker.api only.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run app/main.py` puts app/ (not the repository) on sys.path; the app's own package must import.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import streamlit as st  # noqa: E402

from app import charts, navigation  # noqa: E402
from app.navigation import PageSpec  # noqa: E402
from app.views import compare, forgetting, launch, overview, results, runs, sweep, videos  # noqa: E402
from app.views import inspector as inspector_view  # noqa: E402
from app.views import run as run_page  # noqa: E402

PAGES = [
    PageSpec("overview", "Overview", ":material/home:", overview.render),
    PageSpec("launch", "Launch", ":material/rocket_launch:", launch.render),
    PageSpec("runs", "Runs", ":material/list:", runs.render),
    PageSpec("compare", "Compare", ":material/monitoring:", compare.render),
    PageSpec("forgetting", "Forgetting", ":material/scatter_plot:", forgetting.render),
    PageSpec("videos", "Videos", ":material/movie:", videos.render),
    PageSpec("inspector", "Inspector", ":material/query_stats:", inspector_view.render),
    PageSpec("results", "Results", ":material/table_chart:", results.render),
    PageSpec("run", "Run", ":material/description:", run_page.render),
    PageSpec("sweep", "Sweep", ":material/tune:", sweep.render),
]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def main(default: str = "overview") -> None:
    st.set_page_config(page_title="OPD Lab", page_icon="🤖", layout="wide")
    _warn_if_exposed()
    with st.sidebar:
        charts.preload_bundle()
    st.navigation(navigation.build(PAGES, default)).run()


def _warn_if_exposed() -> None:
    """Binding beyond this machine is a deliberate setting; say so while it is on."""
    address = st.get_option("server.address")
    if address not in LOOPBACK:
        st.sidebar.warning(
            f"Reachable from other machines (server.address={address or 'all interfaces'}). "
            "The dashboard has no login of its own: put it behind a password (see the README)."
        )


if __name__ == "__main__":
    main()
