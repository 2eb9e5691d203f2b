"""The dashboard binds to this machine unless told otherwise."""

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
