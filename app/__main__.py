"""python -m app [streamlit options]: the dashboard, bound to 127.0.0.1 from any working directory.

`streamlit run app/main.py` reads .streamlit/config.toml only when started from the repository root; elsewhere
Streamlit would listen on every interface. This entry point passes the safe settings explicitly; an option given
on the command line (e.g. --server.address 0.0.0.0, a deliberate choice) comes later and wins.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.web import cli

MAIN = Path(__file__).resolve().parent / "main.py"
SAFE_DEFAULTS = (
    "--server.address",
    "127.0.0.1",
    "--server.headless",
    "true",
    "--browser.gatherUsageStats",
    "false",
    "--server.enableStaticServing",  # app/static: the charts' plotly.js bundle (app/charts.py)
    "true",
)


def _preload() -> None:
    """Import the pages and the worker API before the server listens: the first visitor's session would
    otherwise wait for these imports (Streamlit runs every session's script in this process)."""
    import app.main  # noqa: F401  (its `main()` runs only as Streamlit's script)
    import worker.api  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    sys.argv = ["streamlit", "run", str(MAIN), *SAFE_DEFAULTS, *(sys.argv[1:] if argv is None else argv)]
    _preload()
    cli.main()


if __name__ == "__main__":
    main()
