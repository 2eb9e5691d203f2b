#!/usr/bin/env bash
# Create .venv-aloha with the ALOHA extra (requirements-aloha.txt: numpy + gym-aloha, no torch); idempotent: a
# second run only checks. Its own venv, because gym-aloha pins a mujoco that conflicts with the LIBERO extra's.
# The training process (.venv) runs the ALOHA environment worker processes under .venv-aloha/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${OPD_ALOHA_VENV:-.venv-aloha}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.requirements.sha
want=$(sha256sum requirements-aloha.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/pip" install -q -r requirements-aloha.txt
  echo "$want" > "$stamp"
fi
