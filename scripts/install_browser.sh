#!/usr/bin/env bash
# Installs what tests/browser needs: Debian's Chromium (plus fonts) and the DocsGPT chat widget
# from npm (tests/browser/package-lock.json). Run by `make test`, and by the browser test itself
# when something is missing. apt needs root or password-less sudo; without either this says so
# and exits 0, and the browser test skips with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "install_browser: not root and no password-less sudo; cannot apt-get install $*" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_browser: no apt-get on this machine; install $* by hand" >&2
        return 1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium fonts-liberation fonts-dejavu-core \
        || echo "install_browser: Chromium is not installed; the widget test will skip" >&2
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm || echo "install_browser: npm is not installed; the widget test will skip" >&2
fi
if command -v npm >/dev/null 2>&1; then
    # The locked versions, without rewriting the lock. Not `npm ci`: its sync check fails on
    # the platform-only optional packages of the widget's build tools, which the registry here
    # does not list. ignore-scripts (tests/browser/.npmrc): only the widget's prebuilt dist/
    # bundle is used, nothing needs building.
    (cd tests/browser && npm install --no-save --silent)
fi
if command -v chromium >/dev/null 2>&1 && [ -f tests/browser/node_modules/docsgpt/package.json ]; then
    touch tests/browser/node_modules/.installed
    echo "browser test ready: $(chromium --version 2>/dev/null | head -1)," \
        "docsgpt $(node -p 'require("./tests/browser/node_modules/docsgpt/package.json").version')"
fi
