#!/usr/bin/env bash
# Lint and format check (ruff, configured in pyproject.toml); reports both, fails if either finds something.
# Fix locally with:  .venv/bin/ruff format . && .venv/bin/ruff check --fix .
set -uo pipefail
cd "$(dirname "$0")/.."
RUFF=${RUFF:-.venv/bin/ruff}
"$RUFF" --version || exit 1
status=0
"$RUFF" check . || status=1
"$RUFF" format --check . || status=1
exit $status
