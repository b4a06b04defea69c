#!/usr/bin/env bash
# Installs ragloop into a virtual environment. Used by `make install`, CI and the Docker image,
# so what CI tests is what the image runs.
#   scripts/install.sh [VENV_DIR] [EXTRAS]     defaults: .venv dev
set -euo pipefail
venv="${1:-.venv}"
extras="${2:-dev}"
python="${PYTHON:-python3}"
torch_spec="${RAGLOOP_TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first and pinned: with it in place, the project's torch range is already satisfied and
# the resolver never pulls a newer CUDA build (gigabytes we cannot use on a CPU machine).
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet "$torch_spec"
fi
if [ -n "$extras" ]; then
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
else
    "$venv/bin/python" -m pip install --quiet -e .
fi
echo "installed ragloop into $venv"
