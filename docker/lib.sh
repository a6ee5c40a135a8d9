# Shared settings for the docker/ scripts (sourced, not run).
# Everything the CI path keeps between runs lives under CNN_DOCKER_STATE (docker's data root)
# and CNN_DOCKER_CACHE (base-image tarball, downloaded wheels); both may be deleted any time.
# shellcheck shell=bash

CNN_DOCKER_STATE=${CNN_DOCKER_STATE:-/var/lib/cnn-service}
CNN_DOCKER_CACHE=${CNN_DOCKER_CACHE:-/var/cache/cnn-service}
CNN_DOCKER_RUN=${CNN_DOCKER_RUN:-/run/cnn-service}
# docker/dockerd.sh runs a private engine (own socket, data root, no default bridge), so the
# project never touches another engine. The scripts talk to it when it runs and DOCKER_HOST is
# not set; otherwise to DOCKER_HOST / the default engine, as the docker CLI would.
CNN_DOCKER_SOCK=${CNN_DOCKER_SOCK:-$CNN_DOCKER_RUN/docker.sock}
if [ -z "${DOCKER_HOST:-}" ] && [ -S "$CNN_DOCKER_SOCK" ]; then
    export DOCKER_HOST=unix://$CNN_DOCKER_SOCK
fi
# Image names: the defaults are the offline-built ones; with a registry use
#   CNN_BASE_IMAGE=python:3.11-slim CNN_REDIS_IMAGE=redis:7
export CNN_BASE_IMAGE=${CNN_BASE_IMAGE:-cnn-service-base:bookworm}
export CNN_REDIS_IMAGE=${CNN_REDIS_IMAGE:-$CNN_BASE_IMAGE}
export CNN_IMAGE=${CNN_IMAGE:-cnn-service:local}

# Debian's docker CLI (the engine's version); another `docker` may come first on PATH.
DOCKER=${DOCKER:-/usr/bin/docker}
[ -x "$DOCKER" ] || DOCKER=docker

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_install_missing() {
    # apt_install_missing CMD:PACKAGE ...: install PACKAGE when CMD is not found.
    local want=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "${pair%%:*}" ] || want+=("${pair#*:}")
    done
    [ ${#want[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "please install Debian packages: ${want[*]} (needs root)"
    log "apt-get install ${want[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" \
        >/dev/null
}
