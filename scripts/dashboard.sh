#!/usr/bin/env bash
# Set up (if needed) and start the dashboard and one worker on the embedded default (SQLite + filesystem broker
# under ./opd-data): open http://127.0.0.1:8501. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec honcho start -f Procfile
