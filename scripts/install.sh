#!/usr/bin/env bash
# Installs ragloop into a virtual environment from the lock (requirements.lock), so a fresh
# machine gets exactly the versions the tests passed with. Used by `make install`, CI and the
# Docker image.
#   scripts/install.sh [VENV_DIR] [MODE]
#     MODE dev      (default) every locked package (runtime, dev and bench extras), ragloop editable
#     MODE runtime  the runtime dependencies only, at their locked versions, then ragloop itself
#     MODE deps     the runtime dependencies only (the Docker image's layer before the source)
# RAGLOOP_LOCK_FILE names another lock (make update-deps uses it for a candidate).
# RAGLOOP_EXTRAS (comma-separated, e.g. postgres,workers) adds those extras of pyproject.toml
# to MODE runtime and deps, at their locked versions too (docker-compose.yml builds with them).
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
    # The [project] dependencies of pyproject.toml and those of RAGLOOP_EXTRAS, one per line,
    # for pip's -r; an unknown extra is an error, not a silently smaller image.
    "$venv/bin/python" - "$here/pyproject.toml" "${RAGLOOP_EXTRAS:-}" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
reqs = list(project["dependencies"])
for extra in filter(None, (e.strip() for e in sys.argv[2].split(","))):
    if extra not in project["optional-dependencies"]:
        sys.exit(f"install.sh: unknown extra {extra!r} in RAGLOOP_EXTRAS")
    reqs += project["optional-dependencies"][extra]
print("\n".join(reqs))
PY
}
case "$mode" in
    dev)
        "${pip[@]}" -r "$lock"
        "${pip[@]}" --no-deps -e "$here"
        ;;
    runtime)
        reqs="$(runtime_reqs)"
        "${pip[@]}" -c "$lock" -r <(echo "$reqs")
        "${pip[@]}" --no-deps "$here"
        ;;
    deps)
        reqs="$(runtime_reqs)"
        "${pip[@]}" -c "$lock" -r <(echo "$reqs")
        ;;
    *)
        echo "install.sh: unknown mode '$mode' (dev, runtime or deps)" >&2
        exit 2
        ;;
esac
"$venv/bin/python" -m pip check >/dev/null
echo "installed ragloop ($mode) into $venv from $(basename "$lock")"
