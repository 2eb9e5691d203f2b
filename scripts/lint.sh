#!/usr/bin/env bash
# Lint and format check (ruff, configured in pyproject.toml). Fix locally with:
#   .venv/bin/ruff format . && .venv/bin/ruff check --fix .
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF=${RUFF:-.venv/bin/ruff}
"$RUFF" --version
"$RUFF" check .
"$RUFF" format --check .
