#!/usr/bin/env bash
# Set up (if needed) and start the dashboard and one worker on the embedded default (SQLite + filesystem broker
# under ./opd-data): open http://127.0.0.1:8501. Ctrl-C stops both.
# Another port: PORT=8600 bash scripts/dashboard.sh (OPD_PORT works too). A port that is taken is refused
# before anything starts, with a message naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
# honcho sets PORT for every process it starts, so the Procfile reads OPD_PORT, chosen here.
export OPD_PORT="${OPD_PORT:-${PORT:-8501}}"
"${PYTHON:-python3}" - "$OPD_PORT" <<'PY'
import socket
import sys

text = sys.argv[1]
if not text.isdigit() or not 1 <= int(text) <= 65535:
    sys.exit(f"dashboard: port {text!r} is not a port number (1-65535); "
             "pick one with PORT=8600 bash scripts/dashboard.sh")
port = int(text)
probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds: TIME_WAIT is no conflict
try:
    probe.bind(("127.0.0.1", port))
except OSError as exc:
    sys.exit(f"dashboard: port {port} on 127.0.0.1 is already in use ({exc.strerror}), perhaps by another "
             f"dashboard; stop that one, or pick another port: PORT={port + 1} bash scripts/dashboard.sh")
finally:
    probe.close()
PY
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "dashboard: http://127.0.0.1:${OPD_PORT}"
exec honcho start -f Procfile
