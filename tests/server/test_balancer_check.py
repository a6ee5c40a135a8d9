"""The balancer's gRPC health check (docker/balancer/haproxy.cfg), byte for byte, against a real
server: HAProxy sends the hand-written HTTP/2 bytes of `tcp-check send-binary` and passes the
replica only when the reply holds the bytes of `tcp-check expect binary`
(HealthCheckResponse{status: SERVING}). HAProxy itself is not needed: the test plays its part.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

from grpc_health.v1 import health_pb2

from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for

CONFIG = Path(__file__).resolve().parents[2] / "docker" / "balancer" / "haproxy.cfg"
#: A gRPC frame holding a HealthCheckResponse: uncompressed, 2 bytes, field 1 (status) varint.
RESPONSE_PREFIX = bytes.fromhex("000000000208")


def _check_bytes() -> tuple[bytes, bytes]:
    """(request, expected reply bytes) as the balancer's configuration states them."""
    text = CONFIG.read_text()
    send = re.search(r"^\s*tcp-check send-binary ([0-9a-f]+)\s*$", text, re.MULTILINE)
    expect = re.search(r"^\s*tcp-check expect binary ([0-9a-f]+)\s*$", text, re.MULTILINE)
    assert send and expect, f"{CONFIG}: no tcp-check send-binary / expect binary line"
    return bytes.fromhex(send.group(1)), bytes.fromhex(expect.group(1))


def _health_reply(port: int, request: bytes) -> bytes:
    """Send the check's bytes; return what arrived up to the HealthCheckResponse's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=EVENT_LIMIT_S) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + EVENT_LIMIT_S
        while RESPONSE_PREFIX not in received[:-1]:
            assert time.monotonic() < deadline, f"no HealthCheckResponse in {received.hex()}"
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection after {received.hex()}"
            received += chunk
        end = received.index(RESPONSE_PREFIX) + len(RESPONSE_PREFIX) + 1
        return received[:end]


def test_the_check_passes_a_serving_replica(tmp_path: Path) -> None:
    request, expected = _check_bytes()
    server = start_server(tmp_path / "server", tmp_path / "models")
    try:
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
        assert _health_reply(server.port, request).endswith(expected)
    finally:
        server.stop()


def test_the_check_fails_a_draining_replica(tmp_path: Path) -> None:
    """On SIGTERM the server reports NOT_SERVING for CNN_SHUTDOWN_DELAY_S while it still
    serves: the reply then carries status 2, which the expected bytes do not match."""
    request, expected = _check_bytes()
    server: ServerProcess = start_server(
        tmp_path / "server", tmp_path / "models", {"CNN_SHUTDOWN_DELAY_S": str(EVENT_LIMIT_S)}
    )
    try:
        server.process.signal_group(signal.SIGTERM)
        wait_for(
            lambda: server.health() == health_pb2.HealthCheckResponse.NOT_SERVING,
            EVENT_LIMIT_S,
            what="health NOT_SERVING while draining",
        )
        reply = _health_reply(server.port, request)
        assert reply.endswith(RESPONSE_PREFIX + b"\x02")
        assert expected not in reply
    finally:
        server.process.signal_group(signal.SIGKILL)
        server.stop()
