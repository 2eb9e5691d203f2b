"""`opd reproduce`: the paper's study (VLA-OPD vs its alternatives, the forgetting study, the G ablation) on the
built-in tabletop. Modules: presets (sizes), recipes (configs/ YAML), assets (base/teacher/student made once),
plan (which runs), jobs (idempotent train()), references (base/teacher/student rows), analysis (summary numbers),
plots (PNG), report (Markdown), runner (`run_study`)."""

from opd_core.study.presets import FULL, METHODS, PRESETS, QUICK, StudyPreset
from opd_core.study.runner import run_study

__all__ = ["FULL", "METHODS", "PRESETS", "QUICK", "StudyPreset", "run_study"]
