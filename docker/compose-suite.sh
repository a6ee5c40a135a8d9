#!/usr/bin/env bash
# Run the integration suite (tests/integration) in the compose `tests` service against a fresh
# stack, and tear the stack down afterwards. Exit status: the suite's.
#
#   docker/compose-suite.sh [--ci] [--keep] [-- PYTEST_ARGS...]
#     --ci    build without network (--network none) and run on internal networks only
#             (docker/compose.ci.yml): nothing leaves the machine
#     --keep  leave the stack running afterwards (inspect with docker compose ps / logs)
#
# Needs the images' base: $CNN_BASE_IMAGE (default cnn-service-base:bookworm, built offline by
# docker/base-image.sh; python:3.11-slim with a registry) and, offline, docker/wheels.sh.
#
# Stack controller: the suite restarts the server and scales the workers through requests it
# writes into a directory shared with this script (docker/compose.control.yml); this script
# carries them out with `docker compose restart server` / `up --scale worker=N` while the suite
# runs. So the tests container needs no Docker socket (no root-equivalent access), and the
# tests keep one code path for local processes and compose (tests/integration/stack.py).
#
# Replicas stage (last; CNN_COMPOSE_REPLICAS=0 skips it): two server replicas behind the HAProxy
# balancer (docker/compose.replicas.yml), tests/integration/test_replicas.py under load; the
# controller kills, stops and starts a replica on request (`kill replica server-a`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
cd "$root"

ci=0 keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --ci) ci=1 ;;
    --keep) keep=1 ;;
    --) shift; break ;;
    *) die "unknown option $1 (usage: $0 [--ci] [--keep] [-- PYTEST_ARGS...])" ;;
    esac
    shift
done
pytest_args=("$@")

export CNN_TESTS_IMAGE=${CNN_TESTS_IMAGE:-cnn-service-tests:local}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-cnn-service-it}
files=(-f docker-compose.yml)
[ "$ci" = 1 ] && files+=(-f docker/compose.ci.yml)
files+=(-f docker/compose.control.yml)
if "$DOCKER" compose version >/dev/null 2>&1; then
    compose=("$DOCKER" compose "${files[@]}")
else
    command -v docker-compose >/dev/null || die "neither 'docker compose' nor docker-compose found"
    compose=(docker-compose "${files[@]}")
fi
replica_compose=("${compose[@]}" -f docker/compose.replicas.yml)
export CNN_BALANCER_BASE_IMAGE=${CNN_BALANCER_BASE_IMAGE:-cnn-service-balancer:bookworm}
export CNN_BALANCER_IMAGE=${CNN_BALANCER_IMAGE:-cnn-service-haproxy:local}
replicas=${CNN_COMPOSE_REPLICAS:-1}

# Redis refuses anonymous use (docker-compose.yml): a fresh password for this run.
export CNN_REDIS_PASSWORD=${CNN_REDIS_PASSWORD:-$(openssl rand -hex 24)}

control=$(mktemp -d /tmp/cnn-compose-control.XXXXXX)
chmod 0777 "$control"   # written by the tests container's non-root user
export CNN_IT_CONTROL_HOST_DIR=$control

# shellcheck disable=SC2317  # run by the EXIT trap
teardown() {
    local rc=$?
    if [ "$keep" = 1 ]; then
        log "stack left running (--keep): ${compose[*]} down -v"
    else
        "${compose[@]}" --profile tests down -v --remove-orphans >/dev/null 2>&1 \
            || "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    rm -rf "$control" "${tls_dir:-}"
    exit "$rc"
}
trap teardown EXIT

# ---- images ----
build_args=(--force-rm --build-arg "BASE_IMAGE=$CNN_BASE_IMAGE")
[ "$ci" = 1 ] && build_args+=(--network none)
started=$SECONDS
log "docker build $CNN_IMAGE and $CNN_TESTS_IMAGE (base $CNN_BASE_IMAGE)"
# The build stage is tagged too: its layers (the installed dependencies) are then never
# "dangling", so pruning old images keeps them as the cache of the next build.
"$DOCKER" build -q "${build_args[@]}" --target build -t "${CNN_IMAGE%:*}-build:local" . >/dev/null
"$DOCKER" build -q "${build_args[@]}" --target app -t "$CNN_IMAGE" . >/dev/null
"$DOCKER" build -q "${build_args[@]}" --target tests -t "$CNN_TESTS_IMAGE" . >/dev/null
if [ "$replicas" = 1 ]; then
    # The balancer: its base comes from docker/balancer-image.sh (or a registry's haproxy:2.6).
    balancer_args=(--force-rm --build-arg "BALANCER_BASE_IMAGE=$CNN_BALANCER_BASE_IMAGE")
    [ "$ci" = 1 ] && balancer_args+=(--network none)
    "$DOCKER" build -q "${balancer_args[@]}" -t "$CNN_BALANCER_IMAGE" docker/balancer >/dev/null
fi
log "images built in $((SECONDS - started)) s"

# ---- stack ----
"${compose[@]}" --profile tests down -v --remove-orphans >/dev/null 2>&1 || true
started=$SECONDS
wait_healthy() {
    # wait_healthy COMPOSE...: until the container's own health check passes (service
    # $service: default server).
    local server health=starting
    server=$("$@" ps -q "${service:-server}")
    for _ in $(seq 1 180); do
        health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$server")
        [ "$health" = healthy ] && return 0
        sleep 1
    done
    "$@" ps
    "$@" logs --tail 100
    die "${service:-server} not healthy after 180 s"
}

"${compose[@]}" up -d --no-build redis worker server
wait_healthy "${compose[@]}"
log "stack up and healthy in $((SECONDS - started)) s"
# The server shares only what it must: the models, read-write (ONNX imports publish versions),
# and the data volume, read-write (uploaded data sets); not the Numba cache that workers load
# compiled code from.
mounts=$("$DOCKER" inspect -f '{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}' \
    "$("${compose[@]}" ps -q server)")
case " $mounts" in
*" /srv/cnn/models:true "*) ;;
*) die "the server must mount the models read-write (Models.ImportModel); its mounts: $mounts" ;;
esac
case " $mounts" in
*" /srv/cnn/data:true "*) ;;
*) die "the server must mount the data volume read-write (Datasets.Upload); its mounts: $mounts" ;;
esac
case "$mounts" in
*numba-cache*) die "the server must not mount the shared Numba cache; its mounts: $mounts" ;;
esac
log "server mounts: $mounts"
"${compose[@]}" ps

# ---- suite, with this script as its stack controller ----
handle() {
    # handle REQUEST_FILE: run the one-line request, answer with "<status>\n<output>".
    local request=$1 id command output rc
    id=$(basename "$request" .request)
    read -r -a command <"$request"
    rm -f "$request"
    log "stack controller: ${command[*]}"
    set +e
    case "${command[*]}" in
    "restart server")
        output=$("${compose[@]}" restart server 2>&1) ;;
    "scale worker "[0-9]*)
        output=$("${compose[@]}" up -d --no-deps --no-recreate --no-build \
            --scale "worker=${command[2]}" worker 2>&1) ;;
    "kill replica server-"[a-z])
        # SIGKILL, and no restart by Docker's restart policy until `start replica`: the replica
        # stays down as long as the suite needs it down.
        output=$(container=$("${replica_compose[@]}" ps -q "${command[2]}") \
            && "$DOCKER" update --restart no "$container" \
            && "${replica_compose[@]}" kill "${command[2]}" 2>&1) ;;
    "stop replica server-"[a-z])
        # SIGTERM: the replica drains (health NOT_SERVING for CNN_SHUTDOWN_DELAY_S) and exits.
        output=$("${replica_compose[@]}" stop "${command[2]}" 2>&1) ;;
    "start replica server-"[a-z])
        output=$(container=$("${replica_compose[@]}" ps -q "${command[2]}") \
            && "${replica_compose[@]}" start "${command[2]}" 2>&1 \
            && "$DOCKER" update --restart unless-stopped "$container") ;;
    *)
        output="unknown request: ${command[*]}"; false ;;
    esac
    rc=$?
    set -e
    printf '%s\n%s\n' "$rc" "$output" >"$control/$id.tmp"
    mv "$control/$id.tmp" "$control/$id.response"
}

controlled() {
    # controlled COMMAND...: run it, answering its stack-controller requests meanwhile; sets rc.
    "$@" &
    local suite=$!
    while kill -0 "$suite" 2>/dev/null; do
        for request in "$control"/*.request; do
            [ -e "$request" ] && handle "$request"
        done
        sleep 0.2
    done
    set +e
    wait "$suite"
    rc=$?
    set -e
}

echo "$COMPOSE_PROJECT_NAME" >"$control/agent"
log "integration suite in the tests service"
started=$SECONDS
controlled "${compose[@]}" run --rm -T tests python -m pytest -p no:cacheprovider -ra \
    tests/integration "${pytest_args[@]}"
log "suite finished in $((SECONDS - started)) s with status $rc"
if [ "$rc" != 0 ]; then
    "${compose[@]}" ps
    "${compose[@]}" logs --tail 200 redis worker server
    exit "$rc"
fi

# ---- TensorBoard profile: it serves the event files the suite's digits job wrote ----
# (tests/integration/conftest.py trains it with "tensorboard": true.) Asked from inside the
# container: in CI no port is published from the internal networks.
started=$SECONDS
"${compose[@]}" --profile tensorboard up -d --no-build --no-deps tensorboard
tensorboard=$("${compose[@]}" --profile tensorboard ps -q tensorboard)
probe='
import json, sys, urllib.request
tags = json.load(urllib.request.urlopen("http://127.0.0.1:6006/data/plugin/scalars/tags", timeout=5))
runs = [run for run, t in tags.items() if "train/loss" in t and "validation/loss" in t]
print(" ".join(runs))
sys.exit(0 if runs else 1)
'
runs=""
for _ in $(seq 1 120); do
    runs=$("$DOCKER" exec "$tensorboard" python -c "$probe" 2>/dev/null) && break
    runs=""
    sleep 1
done
if [ -z "$runs" ]; then
    "${compose[@]}" --profile tensorboard logs --tail 50 tensorboard
    die "TensorBoard showed no run with train/loss and validation/loss after 120 s"
fi
log "TensorBoard profile serves run(s) $runs in $((SECONDS - started)) s"
"${compose[@]}" --profile tensorboard stop tensorboard >/dev/null 2>&1

# ---- TLS stage: the server again, with docker/compose.tls.yml (TLS + bearer token) ----
# Its container must become healthy (the health check speaks TLS), and clients are served only
# with the CA and the token (tests/integration/test_tls_stack.py).
started=$SECONDS
tls_dir=$(mktemp -d /tmp/cnn-compose-tls.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=server \
    -addext "subjectAltName=DNS:server,DNS:localhost" \
    -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" 2>/dev/null
chmod 0755 "$tls_dir" && chmod 0644 "$tls_dir"/*.pem   # read by the container's user cnn
export CNN_TLS_DIR=$tls_dir CNN_AUTH_TOKEN
CNN_AUTH_TOKEN=$(openssl rand -hex 16)
tls_compose=("${compose[@]}" -f docker/compose.tls.yml)
"${tls_compose[@]}" up -d --no-build --no-deps server
wait_healthy "${tls_compose[@]}"
log "server healthy with TLS and a token in $((SECONDS - started)) s"
set +e
"${tls_compose[@]}" run --rm -T -v "$tls_dir:/tls:ro" -e CNN_IT_TLS_CA=/tls/cert.pem \
    -e CNN_IT_TOKEN="$CNN_AUTH_TOKEN" tests \
    python -m pytest -p no:cacheprovider -ra tests/integration/test_tls_stack.py
rc=$?
set -e
log "TLS stage finished with status $rc"
if [ "$rc" != 0 ]; then
    "${tls_compose[@]}" logs --tail 100 server
    exit "$rc"
fi
[ "$replicas" = 1 ] || exit 0

# ---- replicas stage: two servers behind the balancer (docker/compose.replicas.yml) ----
# The single server is stopped (the replicas take its place); the suite drives load through
# the balancer, has the controller kill server-a, stop server-b (draining) and start them
# again, and reads each replica directly.
started=$SECONDS
"${compose[@]}" stop server >/dev/null 2>&1
"${replica_compose[@]}" up -d --no-build --no-deps server-a server-b balancer
service=server-a wait_healthy "${replica_compose[@]}"
service=server-b wait_healthy "${replica_compose[@]}"
log "replicas healthy in $((SECONDS - started)) s"
started=$SECONDS
controlled "${replica_compose[@]}" --profile tests run --rm -T --no-deps tests \
    python -m pytest -p no:cacheprovider -ra -rP tests/integration/test_replicas.py
log "replicas stage finished in $((SECONDS - started)) s with status $rc"
[ "$rc" = 0 ] || "${replica_compose[@]}" logs --tail 100 server-a server-b balancer
exit "$rc"
