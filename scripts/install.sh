#!/usr/bin/env bash
# Installs ragloop into a virtual environment from the lock (requirements.lock), so a fresh
# machine gets exactly the versions the tests passed with. Used by `make install`, CI and the
# Docker image.
#   scripts/install.sh [VENV_DIR] [MODE]
#     MODE dev      (default) every locked package (runtime, dev and bench extras), ragloop editable
#     MODE runtime  the runtime dependencies only, at their locked versions, then ragloop itself
#     MODE deps     the runtime dependencies only (the Docker image's layer before the source)
# RAGLOOP_LOCK_FILE names another lock (make update-deps uses it for a candidate).
set -euo pipefail
venv="${1:-.venv}"
mode="${2:-dev}"
python="${PYTHON:-python3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
lock="${RAGLOOP_LOCK_FILE:-$here/requirements.lock}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first, at its locked version: with it in place the rest of the lock never makes the
# resolver pull a CUDA build (gigabytes we cannot use on a CPU machine).
torch_line="$(grep -E '^torch==' "$lock")"
if ! "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qxF "$torch_line"; then
    "${pip[@]}" "$torch_line"
fi
runtime_reqs() {
    # The [project] dependencies of pyproject.toml, one per line, for pip's -r.
    "$venv/bin/python" - "$here/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
}
case "$mode" in
    dev)
        "${pip[@]}" -r "$lock"
        "${pip[@]}" --no-deps -e "$here"
        ;;
    runtime)
        "${pip[@]}" -c "$lock" -r <(runtime_reqs)
        "${pip[@]}" --no-deps "$here"
        ;;
    deps)
        "${pip[@]}" -c "$lock" -r <(runtime_reqs)
        ;;
    *)
        echo "install.sh: unknown mode '$mode' (dev, runtime or deps)" >&2
        exit 2
        ;;
esac
"$venv/bin/python" -m pip check >/dev/null
echo "installed ragloop ($mode) into $venv from $(basename "$lock")"
