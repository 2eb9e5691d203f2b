"""What the wheel ships (scripts/check_wheel.sh builds and installs it; CI runs that): the package-data links point
at the repository's folders, and pyproject's package-data patterns cover every file in them."""

import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINKS = {
    "opd_core/resources/configs": "configs",
    "opd_core/resources/assets": "assets",
    "worker/migrations": "migrations",
}


@pytest.mark.parametrize("link", sorted(LINKS))
def test_package_data_links_point_at_the_repository_folders(link):
    path = ROOT / link
    assert path.is_symlink(), f"{link} must stay a link to {LINKS[link]}/ (edit the files there)"
    assert path.resolve() == (ROOT / LINKS[link]).resolve()


def test_package_data_patterns_cover_every_shipped_file():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = {
        "opd_core/resources": package_data["opd_core.resources"],
        "worker/migrations": package_data["worker.migrations"],
    }
    missed = []
    for package, globs in patterns.items():
        base = ROOT / package
        files = {
            Path(folder) / name
            for folder, _, names in os.walk(base, followlinks=True)  # through the links
            for name in names
            if "__pycache__" not in folder
        }
        covered = {p for pattern in globs for p in base.glob(pattern)}
        missed += [str(p.relative_to(ROOT)) for p in files - covered if p.suffix != ".py"]
    assert not missed, f"files the wheel would leave out (add a package-data pattern in pyproject.toml): {missed}"
