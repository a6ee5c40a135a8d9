#!/usr/bin/env bash
# The compose integration suite for real, self-contained (CI calls it from scripts/test.sh when
# CI=true or CNN_COMPOSE_TESTS=1; runs as root):
#   1. install Debian's docker.io, docker-compose and debootstrap when missing;
#   2. start a private dockerd (docker/dockerd.sh) unless one answers already;
#   3. build the base image offline (docker/base-image.sh: debootstrap + docker import; cached),
#      and the balancer's (docker/balancer-image.sh: the same with Debian's haproxy);
#   4. download the wheels on the host (docker/wheels.sh; cached);
#   5. build the images without network, bring the stack up on internal networks, run
#      tests/integration in the `tests` service, tear it all down (docker/compose-suite.sh --ci);
#   6. stop the dockerd it started, also on failure.
# Exit status: the suite's (or the first failing step's). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/lib.sh
. docker/lib.sh

t0=$SECONDS
apt_install_missing dockerd:docker.io docker-compose:docker-compose debootstrap:debootstrap \
    openssl:openssl
[ -x .venv/bin/python ] || scripts/setup.sh

engine=$(docker/dockerd.sh start)
export DOCKER_HOST=unix://$CNN_DOCKER_SOCK
finish() {
    local rc=$?
    # Dangling images from earlier builds: the layer cache of the current ones stays.
    "$DOCKER" image prune -f >/dev/null 2>&1 || true
    if [ "$engine" = started ]; then
        docker/dockerd.sh stop || true
    fi
    log "compose suite: status $rc after $((SECONDS - t0)) s"
    exit "$rc"
}
trap finish EXIT

docker/base-image.sh
[ "${CNN_COMPOSE_REPLICAS:-1}" = 1 ] && docker/balancer-image.sh
docker/wheels.sh
docker/compose-suite.sh --ci -- "$@"
