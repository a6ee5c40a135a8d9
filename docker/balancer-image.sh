#!/usr/bin/env bash
# Build the offline base of the gRPC load balancer, `cnn-service-balancer:bookworm`: Debian's
# haproxy (2.6 in bookworm) on a debootstrap minbase, made exactly like the application's base
# (docker/base-image.sh: the machine's Debian mirror, cached tarball, `docker import`).
# docker/balancer/Dockerfile adds the configuration (docker/balancer/haproxy.cfg) on top.
# With a registry, the official image works as the base instead:
#   docker build --build-arg BALANCER_BASE_IMAGE=haproxy:2.6 docker/balancer
# Usage: docker/balancer-image.sh [--force]   (root; a running engine: docker/dockerd.sh start)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CNN_ROOTFS_NAME=balancer CNN_ROOTFS_PACKAGES=haproxy exec "$here/base-image.sh" "$@"
