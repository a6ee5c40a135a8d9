"""h2load, nghttp2's native HTTP/2 load generator, driving one level of the serving benchmark.

h2load sends a gRPC-framed request over c connections of one stream each and logs every request
that ended in its measured phase. It cannot see gRPC status codes (they travel in HTTP
trailers; the HTTP status is 200 even for gRPC errors), so the caller counts those from the
server's own metrics (:mod:`bench.server_probes`). The command, the log and the summary parsers
are pure and tested in `tests/bench/test_h2load_tools.py`.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

from bench.measure import cpu_in_window, summarise
from bench.payload import classify_payload, method_of

# warm-up before h2load's measured phase, and slack on both sides of our window inside it
WARMUP_S = 0.5
MARGIN_S = 0.25


def grpc_frame(message: bytes) -> bytes:
    """The HTTP/2 DATA payload of a unary gRPC request carrying `message`, uncompressed.

    Layout: 1 byte compressed flag (0), 4-byte big-endian message length, message.

    Raises:
        ValueError: the message is longer than the 4-byte length allows (2**32 - 1 bytes).
    """
    if len(message) > 0xFFFFFFFF:
        raise ValueError(f"message: {len(message)} bytes, a gRPC frame holds at most 2**32 - 1")
    return b"\x00" + len(message).to_bytes(4, "big") + message


class LoggedRequest(NamedTuple):
    """One row of an h2load `--log-file`."""

    start_us: int  # wall-clock start, microseconds since the epoch
    status: int  # HTTP status; -1 for a failed stream
    latency_us: int  # microseconds from the request until the end of the response

    @property
    def end_us(self) -> int:
        return self.start_us + self.latency_us

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_h2load_log(text: str) -> list[LoggedRequest]:
    """Rows of an h2load log: tab-separated start (us since epoch), HTTP status, latency (us).

    Columns beyond the third (h2load may add some) are ignored; blank lines are skipped.

    Raises:
        ValueError: a row has fewer than 3 columns or a non-integer one; names the line.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) < 3:
                raise ValueError(f"{len(fields)} columns, expected at least 3")
            rows.append(LoggedRequest(int(fields[0]), int(fields[1]), int(fields[2])))
        except ValueError as exc:
            raise ValueError(f"h2load log line {number} ({line!r}): {exc}") from None
    return rows


_SUMMARY = re.compile(
    r"^requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout$",
    re.MULTILINE,
)


def parse_h2load_summary(output: str) -> dict[str, int]:
    """The request counts of h2load's summary line (`requests: N total, N started, ...`).

    Returns:
        {"total", "started", "done", "succeeded", "failed", "errored", "timeout"} -> count.

    Raises:
        ValueError: the output has no such line.
    """
    match = _SUMMARY.search(output)
    if match is None:
        raise ValueError("h2load output has no 'requests: ... total, ...' summary line")
    return {key: int(value) for key, value in match.groupdict().items()}


def _duration_arg(seconds: float) -> str:
    """An h2load <DURATION>: whole milliseconds with a unit ('0.5' alone is rejected)."""
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"duration: {seconds} s, h2load needs at least 1 ms")
    return f"{ms}ms"


def h2load_command(
    h2load: str,
    url: str,
    body: Path,
    log: Path,
    concurrency: int,
    warmup: float,
    duration: float,
) -> list[str]:
    """h2load arguments for a timing-based run of unary gRPC calls posting the file `body`.

    `concurrency` connections with one stream each (like that many independent clients), one
    native thread; `log` gets one row per request completed after the warm-up.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency: {concurrency}, must be >= 1")
    return [
        h2load,
        "--duration",
        _duration_arg(duration),
        "--warm-up-time",
        _duration_arg(warmup),
        "--threads",
        "1",
        "--clients",
        str(concurrency),
        "--max-concurrent-streams",
        "1",
        "--data",
        str(body),
        "--header",
        "content-type: application/grpc",
        "--header",
        "te: trailers",
        "--log-file",
        str(log),
        url,
    ]


def level(
    h2load: str,
    address: str,
    kind: str,
    concurrency: int,
    duration: float,
    workdir: Path,
    server_pid: int,
    request: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """One level driven by h2load; `failed` counts failed or non-2xx HTTP/2 streams only.

    `request`: (method, serialized message) to post instead of `kind`'s method and the
    Classify payload.

    h2load logs the requests whose response ended in its measured phase (after its warm-up;
    checked against its summary). It runs for our window plus a margin on both sides, and
    requests, latencies and CPU (server and h2load) are all taken over that window.
    """
    method, message = request or (method_of(kind), classify_payload())
    body = workdir / "request.grpc"
    body.write_bytes(grpc_frame(message))
    log = workdir / f"h2load-{kind}-{concurrency}.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log file
    output = workdir / f"h2load-{kind}-{concurrency}.out"
    command = h2load_command(
        h2load,
        f"http://{address}{method}",
        body,
        log,
        concurrency,
        WARMUP_S,
        duration + 2 * MARGIN_S,
    )
    begin = time.time() + WARMUP_S + MARGIN_S
    end = begin + duration
    with output.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        # an h2load that exited early is a zombie until waited for: its /proc entry stays
        server_cpu, load_cpu = cpu_in_window((server_pid, proc.pid), begin, end)
        if proc.wait(timeout=duration + 60) != 0:
            raise RuntimeError(f"h2load failed ({proc.returncode}): {output.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = parse_h2load_summary(output.read_text())
    logged = parse_h2load_log(log.read_text())
    if len(logged) != summary["done"]:
        raise RuntimeError(
            f"h2load log {log} has {len(logged)} rows but its summary {summary['done']} done"
        )
    begin_us, end_us = begin * 1e6, end * 1e6
    if (
        not logged
        or min(r.end_us for r in logged) > begin_us
        or max(r.end_us for r in logged) < end_us
    ):
        raise RuntimeError(f"h2load's measured phase did not cover the window ({log})")
    inside = [r for r in logged if begin_us <= r.end_us < end_us]
    row = summarise(
        concurrency,
        [r.latency_us * 1e-6 for r in inside],
        sum(not r.ok for r in logged),
        duration,
        server_cpu,
        load_cpu,
    )
    row["h2load"] = summary
    return row


def version(h2load: str) -> str:
    """h2load's `--version` line (the executable's path if it prints none)."""
    out = subprocess.run([h2load, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or h2load
