"""Where the data opd_core ships lies: the recipes (configs/) and the shipped checkpoints (assets/).

In a checkout, `configs` and `assets` here are symbolic links to the repository's configs/ and assets/ folders
(the paths README's commands use, and the ones to edit); building the wheel copies what they point to, so an
installed package finds the same files from any working directory.
"""

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
CONFIG_DIR = RESOURCES_DIR / "configs"
"""The YAML recipes (`opd train CONFIG`, and the study's roles, see opd_core.study.recipes)."""
ASSETS_DIR = RESOURCES_DIR / "assets"
"""The shipped checkpoints (assets/tabletop: the base, and per suite a teacher and 1-demo student; see
StudyPreset.default_assets)."""
