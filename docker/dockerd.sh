#!/usr/bin/env bash
# A private Docker engine for the project's CI: its own socket ($CNN_DOCKER_RUN/docker.sock),
# data root ($CNN_DOCKER_STATE/docker, kept between runs as an image cache) and no default
# bridge or IP forwarding (the compose networks are internal: nothing leaves the machine).
#   docker/dockerd.sh start   start it in the background unless it answers already; prints
#                             "started" or "running" (so a caller knows whether to stop it)
#   docker/dockerd.sh stop    stop the engine this script started (pid file), wait for it
#   docker/dockerd.sh status
# Needs root and Debian's docker.io (dockerd, containerd, runc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
export DOCKER_HOST=unix://$CNN_DOCKER_SOCK
pidfile=$CNN_DOCKER_RUN/dockerd.pid
logfile=$CNN_DOCKER_STATE/dockerd.log

answers() { "$DOCKER" version >/dev/null 2>&1; }

case "${1:-}" in
start)
    if answers; then
        echo running
        exit 0
    fi
    [ "$(id -u)" = 0 ] || die "dockerd needs root"
    command -v dockerd >/dev/null || die "dockerd not found: apt-get install docker.io"
    mkdir -p "$CNN_DOCKER_STATE/docker" "$CNN_DOCKER_RUN"
    # setsid: its own session, so a Ctrl-C in the caller's terminal does not reach it.
    setsid dockerd \
        --data-root "$CNN_DOCKER_STATE/docker" \
        --exec-root "$CNN_DOCKER_RUN/exec" \
        --host "unix://$CNN_DOCKER_SOCK" \
        --pidfile "$pidfile" \
        --bridge none \
        --ip-forward=false \
        --log-level warn \
        </dev/null >>"$logfile" 2>&1 &
    for _ in $(seq 1 120); do
        if answers; then
            log "dockerd $("$DOCKER" version -f '{{.Server.Version}}') up (pid $(cat "$pidfile"))"
            echo started
            exit 0
        fi
        kill -0 $! 2>/dev/null || { tail -20 "$logfile" >&2; die "dockerd exited"; }
        sleep 0.5
    done
    tail -20 "$logfile" >&2
    die "dockerd did not answer within 60 s"
    ;;
stop)
    [ -s "$pidfile" ] || { log "dockerd: no pid file, nothing to stop"; exit 0; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
        # Containers first, so their processes end cleanly and nothing stays mounted.
        ids=$("$DOCKER" ps -q 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || "$DOCKER" stop -t 10 $ids >/dev/null 2>&1 || true
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "dockerd (pid $pid) did not stop in 30 s: SIGKILL"
            kill -KILL "$pid"
        fi
        log "dockerd (pid $pid) stopped"
    fi
    rm -f "$pidfile"
    ;;
status)
    if answers; then echo running; else echo stopped; exit 1; fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
