"""The pure parts of the serving benchmark's h2load driver, on real data (no full benchmark).

Frames, h2load's log and summary, and the server's Prometheus counter; one test runs the real
h2load for half a second against an in-process gRPC server (skipped without h2load).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from bench.h2load import (
    LoggedRequest,
    grpc_frame,
    h2load_command,
    parse_h2load_log,
    parse_h2load_summary,
)
from bench.payload import CLASSIFY_METHOD, ECHO_METHOD, ECHO_SERVICE, classify_payload
from bench.server_probes import codes_delta, grpc_codes
from server import metrics

# --- gRPC frames ---------------------------------------------------------------------------


def test_frame_is_flag_zero_then_big_endian_length_then_message() -> None:
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"x" * 300)[:5] == b"\x00\x00\x00\x01\x2c"
    assert grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def test_frame_of_the_classify_request_wraps_it_unchanged() -> None:
    payload = classify_payload()
    frame = grpc_frame(payload)
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == len(payload)
    assert frame[5:] == payload


# --- h2load log and summary ----------------------------------------------------------------

# Rows of a real h2load 1.52 log (c=1 against the echo server), plus a failed stream (-1).
H2LOAD_LOG = (
    "1795619035609451\t200\t143\n"
    "1795619035609638\t200\t187\n"
    "1795619035609833\t200\t167\n"
    "1795619037609226\t-1\t107\n"
)

# The summary of a real run (`-D 2 --warm-up-time 500ms -c 32 -m 1`).
H2LOAD_OUTPUT = """\
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.50s, 10184.00 req/s, 1.46MB/s
requests: 20368 total, 20368 started, 20368 done, 20368 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 20368 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_log_rows_give_start_status_latency_and_end() -> None:
    rows = parse_h2load_log(H2LOAD_LOG)
    assert rows[0] == LoggedRequest(1795619035609451, 200, 143)
    assert rows[0].end_us == 1795619035609594
    assert [r.ok for r in rows] == [True, True, True, False]


def test_log_ignores_blank_lines_and_extra_columns() -> None:
    rows = parse_h2load_log("\n1795619035609451\t200\t143\tlater-column\n\n")
    assert rows == [LoggedRequest(1795619035609451, 200, 143)]


@pytest.mark.parametrize("bad", ["1795619035609451\t200", "1795619035609451\tok\t143"])
def test_malformed_log_line_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_h2load_log("1795619035609451\t200\t143\n" + bad + "\n")


def test_summary_counts_are_read() -> None:
    summary = parse_h2load_summary(H2LOAD_OUTPUT)
    assert summary == {
        "total": 20368,
        "started": 20368,
        "done": 20368,
        "succeeded": 20368,
        "failed": 0,
        "errored": 0,
        "timeout": 0,
    }


def test_output_without_summary_is_rejected() -> None:
    with pytest.raises(ValueError, match="summary"):
        parse_h2load_summary("-D: value error 0.5\n")


def test_command_gives_durations_in_milliseconds_with_units(tmp_path: Path) -> None:
    command = h2load_command(
        "h2load", "http://127.0.0.1:1/a/B", tmp_path / "b", tmp_path / "l", 8, 0.5, 3.5
    )
    assert command[command.index("--warm-up-time") + 1] == "500ms"
    assert command[command.index("--duration") + 1] == "3500ms"
    assert command[command.index("--clients") + 1] == "8"
    assert command[command.index("--max-concurrent-streams") + 1] == "1"
    with pytest.raises(ValueError, match="duration"):
        h2load_command("h2load", "http://x/", tmp_path / "b", tmp_path / "l", 1, 0.0, 1.0)


# --- server metrics ------------------------------------------------------------------------


def test_codes_of_one_method_are_read_from_the_servers_counter() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.REQUESTS)  # the server's own counter, exposed on its own
    method = "/test.BenchTools/Probe"
    metrics.REQUESTS.labels(method, "OK").inc(3)
    metrics.REQUESTS.labels(method, "INVALID_ARGUMENT").inc()
    metrics.REQUESTS.labels("/test.BenchTools/Other", "INTERNAL").inc()
    codes = grpc_codes(generate_latest(registry).decode(), method)
    assert codes == {"OK": 3, "INVALID_ARGUMENT": 1}


def test_codes_ignore_other_metrics_and_unseen_methods() -> None:
    registry = CollectorRegistry()
    Counter("cnn_inference_images", "Images.", ["model"], registry=registry).labels("d").inc(5)
    Counter("cnn_grpc_requests", "Requests.", ["method", "code"], registry=registry).labels(
        "/cnn.v1.Classifier/ListModels", "OK"
    ).inc()
    assert grpc_codes(generate_latest(registry).decode(), CLASSIFY_METHOD) == {}


def test_codes_delta_lists_only_codes_that_grew() -> None:
    before = {"OK": 10, "UNAVAILABLE": 2}
    after = {"OK": 50, "UNAVAILABLE": 2, "RESOURCE_EXHAUSTED": 4}
    assert codes_delta(before, after) == {"OK": 40, "RESOURCE_EXHAUSTED": 4}
    assert codes_delta(after, after) == {}


# --- real h2load against a real gRPC server ------------------------------------------------


@pytest.fixture()
def recording_server() -> Iterator[tuple[int, list[bytes]]]:
    """An in-process gRPC server echoing `/bench.Echo/Echo` and recording each request."""
    received: list[bytes] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        received.append(request)
        return request

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, received
    finally:
        server.stop(grace=None)


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) missing")
def test_h2load_delivers_the_framed_request_and_logs_its_measured_phase(
    tmp_path: Path, recording_server: tuple[int, list[bytes]]
) -> None:
    port, received = recording_server
    payload = classify_payload()
    body, log = tmp_path / "request.grpc", tmp_path / "h2load.log"
    body.write_bytes(grpc_frame(payload))
    url = f"http://127.0.0.1:{port}{ECHO_METHOD}"
    command = h2load_command(str(shutil.which("h2load")), url, body, log, 2, 0.2, 0.3)
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    summary = parse_h2load_summary(output.stdout)
    rows = parse_h2load_log(log.read_text())
    assert received and set(received) == {payload}  # the server decoded exactly our message
    assert len(rows) == summary["done"] == summary["succeeded"] > 0
    assert all(r.ok for r in rows)
    assert len(received) > len(rows)  # warm-up requests reached the server but are not logged
