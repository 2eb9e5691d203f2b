#!/usr/bin/env bash
# Install check: build the wheel, install it (not editable) into a new venv that sees only the pinned stack, and run
# the CLI from a directory outside the checkout, so that nothing is found through the repository by accident:
# `opd reproduce --help`, `opd worker --help`, a store migration, and a tiny `opd train` (SFT on generated demos).
#
# The check's venv is new on every run, in the temporary folder; KEEP=1 keeps that folder.
# Needs `build` in $VENV (default .venv, made by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/opd-wheel.XXXXXX")
VENV=$(realpath -m "${VENV:-.venv}")
check_venv=$tmp/venv
trap '[ "${KEEP:-0}" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"' EXIT
start=$SECONDS

# The wheel, built in an isolated environment from the sdist, as `python -m build` does.
"$VENV/bin/python" -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/opd_lab-*.whl)
echo "[wheel] built $(basename "$wheel") in $((SECONDS - start)) s"

# The venv: empty but for the wheel, seeing the pinned stack of $VENV (installed from requirements.txt, torch==2.13.0
# as spelled there) through a path file, read-only: reinstalling 2 GB of the same wheels would add minutes and test
# nothing more. The wheel goes in with no index at all, so its dependency ranges must be met by those pins. A path
# file's own folder is not a site folder, so $VENV's editable install of this checkout stays invisible here.
"${PYTHON:-python3}" -m venv --without-pip "$check_venv"  # its own pip and setuptools would shadow the pins
site=$("$check_venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
stack=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$stack" > "$site/_opd_pinned_stack.pth"
"$VENV/bin/pip" --python "$check_venv/bin/python" install -q --no-index "$wheel"
echo "[wheel] installed at $((SECONDS - start)) s"

mkdir "$tmp/work"
cd "$tmp/work"
unset PYTHONPATH
export OMP_NUM_THREADS=1 OPD_DATA_DIR="$tmp/work/opd-data"
python="$check_venv/bin/python"
opd="$check_venv/bin/opd"
"$python" - "$repo" <<'PY'
import sys
from pathlib import Path

import opd_core
import worker
from opd_core.resources import ASSETS_DIR, CONFIG_DIR, RESOURCES_DIR
from opd_core.study import QUICK
from opd_core.study.recipes import load_recipe

repo = Path(sys.argv[1]).resolve()
for module in (opd_core, worker):
    where = Path(module.__file__).resolve()
    assert repo not in where.parents, f"{module.__name__} imported from the checkout: {where}"
for role in ("base", "teacher", "student", "opd"):
    load_recipe(role, "object")
assert (ASSETS_DIR / "tabletop" / "object" / "teacher" / "model.safetensors").is_file(), ASSETS_DIR
assert (CONFIG_DIR / "libero").is_dir(), CONFIG_DIR
assert (RESOURCES_DIR / QUICK.default_assets / "base").is_dir(), "opd reproduce --quick would not find its assets"
import app

assert (Path(app.__file__).parent / "static" / "plotly-basic.min.js").is_file(), "the charts' bundle is missing"
print("[wheel] recipes and shipped assets found in", CONFIG_DIR.parent)
PY
"$opd" reproduce --help >/dev/null
"$opd" worker --help >/dev/null
"$python" -c "from worker.migrate import upgrade_to_head; \
print('[wheel] store migrated to', upgrade_to_head('sqlite:///$tmp/work/store.sqlite'))"

# A tiny `opd train`: 3 SFT steps of the installed 1-demo student recipe from the installed base checkpoint, on
# demos generated here.
tasks=object/pick_red_block_into_basket,object/pick_green_block_into_basket
"$opd" demos --tasks "$tasks" --num 2 --out demos >demos.log 2>&1 || { cat demos.log; exit 1; }
resources=$("$python" -c "from opd_core.resources import RESOURCES_DIR; print(RESOURCES_DIR)")
"$opd" train "$resources/configs/student_object_1demo.yaml" --out run --set steps=3 --set "tasks=[$tasks]" \
  --set demos=demos --set sft_batch_size=32 --set eval_every=3 --set eval_init_states=1 --set save_every=3 \
  --set "student_checkpoint=$resources/assets/tabletop/base" >train.log 2>&1 || { cat train.log; exit 1; }
test -f run/checkpoints/step_3/meta.json || { cat train.log; ls -R run; exit 1; }
echo "[wheel] opd train finished: $(ls run/checkpoints | tr '\n' ' ')"
echo "[wheel] install check passed in $((SECONDS - start)) s"
