#!/opt/cnn/bin/python
"""Container health check: exit 0 when the server's grpc.health.v1 overall status is SERVING.

Usage: cnn-grpc-health [HOST:PORT] [--service NAME] [--timeout SECONDS]
(default address: 127.0.0.1 and the port of CNN_GRPC_ADDRESS, else 50051).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_address() -> str:
    port = os.environ.get("CNN_GRPC_ADDRESS", "").rpartition(":")[2] or "50051"
    return f"127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="cnn-grpc-health", description=__doc__)
    parser.add_argument("address", nargs="?", default=default_address())
    parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline in seconds")
    args = parser.parse_args()
    try:
        with grpc.insecure_channel(args.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.address}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
