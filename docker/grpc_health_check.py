#!/opt/cnn/bin/python
"""Container health check: exit 0 when the server's grpc.health.v1 overall status is SERVING.

Usage: cnn-grpc-health [HOST:PORT] [--service NAME] [--timeout SECONDS]
(default address: 127.0.0.1 and the port of CNN_GRPC_ADDRESS, else 50051).

It speaks the way the server in the same container listens: when the server has TLS
(CNN_TLS_CERT set), the check connects with TLS, trusting CNN_HEALTH_CA_CERT (default: the
server's own certificate, right for a self-signed one) and checking the name
CNN_HEALTH_TLS_NAME (default `localhost`: the certificate must name it). When the server
requires client certificates (CNN_TLS_CLIENT_CA), CNN_HEALTH_CLIENT_CERT and
CNN_HEALTH_CLIENT_KEY name the check's own. Health needs no bearer token (the server leaves
grpc.health.v1 public), so CNN_AUTH_TOKEN changes nothing here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_address() -> str:
    port = os.environ.get("CNN_GRPC_ADDRESS", "").rpartition(":")[2] or "50051"
    return f"127.0.0.1:{port}"


def _env_file(name: str, default: str = "") -> bytes | None:
    path = os.environ.get(name, "").strip() or default
    return Path(path).read_bytes() if path else None


def open_channel(address: str) -> grpc.Channel:
    """A channel to the server as it is configured in this container's environment."""
    server_cert = os.environ.get("CNN_TLS_CERT", "").strip()
    if not server_cert:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_env_file("CNN_HEALTH_CA_CERT", server_cert),
        private_key=_env_file("CNN_HEALTH_CLIENT_KEY"),
        certificate_chain=_env_file("CNN_HEALTH_CLIENT_CERT"),
    )
    name = os.environ.get("CNN_HEALTH_TLS_NAME", "").strip() or "localhost"
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", name)]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="cnn-grpc-health", description=__doc__)
    parser.add_argument("address", nargs="?", default=default_address())
    parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline in seconds")
    args = parser.parse_args()
    try:
        with open_channel(args.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except OSError as exc:
        print(f"{args.address}: cannot read a TLS file: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.address}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
