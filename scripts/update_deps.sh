#!/usr/bin/env bash
# `make update-deps`: re-resolve every dependency to the newest version pyproject.toml allows,
# run the whole test suite on that set, and write it to requirements.lock only when it passes.
# The candidate is built in its own venv, so the working .venv and the lock are untouched on
# failure.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
venv="${UPDATE_VENV:-.venv-update}"
python="${PYTHON:-python3}"
candidate="$(mktemp "${TMPDIR:-/tmp}/ragloop-lock.XXXXXX")"
trap 'rm -f "$candidate"' EXIT

rm -rf "$venv"
"$python" -m venv "$venv"
torch_line="$(grep -E '^torch==' requirements.lock)"
# torch stays at its pin (installed first; a newer one would bring a CUDA build).
"$venv/bin/python" -m pip install --quiet "$torch_line"
"$venv/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev,bench]"
"$venv/bin/python" -m pip check
{
    echo "# The tested environment: every package and version \`make test\` passed with."
    echo "# Written by \`make update-deps\` (scripts/update_deps.sh); installed by scripts/install.sh."
    "$venv/bin/python" -m pip freeze --exclude-editable | LC_ALL=C sort -f
} > "$candidate"
echo "candidate lock: $(grep -cv '^#' "$candidate") packages; running the tests on it"
if RAGLOOP_LOCK_FILE="$candidate" make test VENV="$venv"; then
    cp "$candidate" requirements.lock
    echo "requirements.lock updated; review with: git diff requirements.lock"
else
    echo "update-deps: the tests failed on the newest versions; requirements.lock unchanged" >&2
    echo "(the candidate venv is kept in $venv for a look)" >&2
    exit 1
fi
