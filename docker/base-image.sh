#!/usr/bin/env bash
# Build the offline base image `cnn-service-base:bookworm` (python3.11 + python3-venv +
# redis-server) with no container registry: debootstrap --variant=minbase from the Debian
# mirror this machine's apt is configured with (read from apt's sources, never hard-coded),
# then `docker import`.
#
# Cached: the root file system tarball is kept in $CNN_DOCKER_CACHE keyed by the mirror, the
# package list and this script, so a warm run only re-imports it (or does nothing when the
# engine already has the image with the same key). Needs root and a running engine
# (docker/dockerd.sh start).
# Usage: docker/base-image.sh [--force]
# Other images built the same way set CNN_ROOTFS_NAME and CNN_ROOTFS_PACKAGES (e.g.
# docker/balancer-image.sh: `cnn-service-balancer:bookworm` with haproxy); each name has its
# own cached tarball.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=docker/lib.sh
. "$here/lib.sh"

SUITE=${CNN_BASE_SUITE:-bookworm}
NAME=${CNN_ROOTFS_NAME:-base}
PACKAGES=${CNN_ROOTFS_PACKAGES:-python3,python3-venv,redis-server}
IMAGE=cnn-service-$NAME:$SUITE
force=${1:-}

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
apt_install_missing debootstrap:debootstrap

# The mirror apt uses for "$SUITE main", plus its -updates and -security suites (when present).
# shellcheck disable=SC2016  # apt's own $(FIELD) placeholders, not shell
sources=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
    | awk -v s="$SUITE" '$3 == "main" && ($2 == s || $2 == s "-updates" || $2 == s "-security")' \
    | sort -u)
mirror=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$sources")
[ -n "$mirror" ] || die "no '$SUITE main' source in apt's configuration (/etc/apt/sources.list*)"

key=$( { echo "$sources"; echo "$PACKAGES"; cat "$0"; } | sha256sum | cut -c1-16)
if [ "$force" != "--force" ] \
    && [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "org.cnn-service.base-key"}}' \
        "$IMAGE" 2>/dev/null)" = "$key" ]; then
    log "base image $IMAGE is up to date (key $key)"
    exit 0
fi

tarball=$CNN_DOCKER_CACHE/$NAME-$SUITE-$key.tar.gz
if [ "$force" = "--force" ] || [ ! -s "$tarball" ]; then
    mkdir -p "$CNN_DOCKER_CACHE"
    rootfs=$(mktemp -d "$CNN_DOCKER_CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap --variant=minbase $SUITE from $mirror (+ $PACKAGES)"
    started=$SECONDS
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" \
        >"$CNN_DOCKER_CACHE/debootstrap.log" 2>&1 \
        || { tail -30 "$CNN_DOCKER_CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    # Same suites as the host: point-release updates and security fixes.
    awk '{ print "deb " $1 " " $2 " " $3 }' <<<"$sources" >"$rootfs/etc/apt/sources.list"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    chroot "$rootfs" sh -ec 'export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get upgrade -y -qq >/dev/null
        apt-get clean && rm -rf /var/lib/apt/lists/*' >>"$CNN_DOCKER_CACHE/debootstrap.log" 2>&1 \
        || { tail -30 "$CNN_DOCKER_CACHE/debootstrap.log" >&2; die "apt-get upgrade failed"; }
    : >"$rootfs/etc/resolv.conf"
    # Slim down: documentation, man pages, locales other than C, caches.
    rm -rf "$rootfs"/usr/share/{doc,man,info}/* "$rootfs"/var/cache/debconf/*-old \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
    # redis-server's data directory, owned by the redis user (the official image's layout).
    if chroot "$rootfs" id redis >/dev/null 2>&1; then
        mkdir -p "$rootfs/data" && chroot "$rootfs" chown redis:redis /data
    fi
    tar -C "$rootfs" --numeric-owner -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
    # Older keys' tarballs are dead weight.
    find "$CNN_DOCKER_CACHE" -maxdepth 1 -name "$NAME-$SUITE-*.tar.gz" ! -name "${tarball##*/}" \
        -delete
    log "root file system built in $((SECONDS - started)) s ($(du -h "$tarball" | cut -f1))"
fi

log "docker import $tarball -> $IMAGE"
"$DOCKER" import \
    --change "LABEL org.cnn-service.base-key=$key" \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    "$tarball" "$IMAGE" >/dev/null
