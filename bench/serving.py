"""Latency/throughput benchmark: `python -m bench.serving [--load h2load|python] [--duration S]`.

Starts (in separate processes) the real server and two bare gRPC echo servers, drives each
at concurrency 1, 8 and 32, and prints per level p50/p99 latency, throughput and CPU per
request of the server and of the load generator, next to the echo floor, the model's batch-1
forward latency measured locally, and the server's mean batch size (V2 model statistics).

The floor is an echo on the server's own stack (`grpc.aio`, one event loop), so the
difference is exactly the server's work; a thread-pool `grpc.server` echo is measured too
and printed for comparison (it answers a lone client faster here, but scales worse).

Load generators (`--load`):
  h2load  (default) nghttp2's native HTTP/2 load generator (`scripts/setup.sh --bench`
          installs it): c connections with one stream each post a gRPC-framed request. It
          cannot see gRPC status codes (they travel in HTTP trailers; the HTTP status is 200
          even for gRPC errors), so failed = non-OK codes added to the server's Prometheus
          counter `cnn_grpc_requests_total` during the level + failed or non-2xx HTTP/2
          streams; and one gRPC Python Classify call before and after each level must
          succeed with the same top class.
  python  gRPC Python client processes (threads spread over `--processes` processes); they
          cost ~160 us of CPU per request themselves, which dominates on a small machine.

Latency, throughput and CPU are all taken over the same wall-clock window of `--duration`
seconds after a warm-up; a request counts when its response ended inside the window.

Without `--models-dir` a digits model (briefly trained with `core`) is published into a
temporary repository. Targets checked and printed:
  c=1:  p50 <= echo p50 + model batch-1 latency + 150 us
  c=32: throughput >= 4 x throughput at c=1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

CLASSIFY_METHOD = "/cnn.v1.Classifier/Classify"
ECHO_METHOD = "/bench.Echo/Echo"
MODEL = "digits"
ROOT = Path(__file__).resolve().parent.parent
REQUESTS_METRIC = "cnn_grpc_requests"  # server.metrics.REQUESTS (a Counter: samples "..._total")
# h2load: warm-up before its measured phase, and slack on both sides of our window inside it
H2LOAD_WARMUP_S = 0.5
H2LOAD_MARGIN_S = 0.25


# --- echo server (floor) -------------------------------------------------------------------


def run_echo_server(port_file: Path, stack: str, workers: int) -> None:
    """Serve `/bench.Echo/Echo` (the request bytes back) on 127.0.0.1 until killed.

    `stack` "aio" is the server's own stack (`grpc.aio`, handlers on one event loop): the
    floor the targets use. "threads" is the classic `grpc.server` with a thread pool, shown
    for comparison (faster at c=1 on this kind of machine, slower under load).
    """
    import grpc

    def echo(request: bytes, context: Any) -> bytes:
        return request

    async def echo_async(request: bytes, context: Any) -> bytes:
        return request

    if stack == "threads":
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        port_file.write_text(str(port))
        server.wait_for_termination()
        return

    import asyncio

    async def serve() -> None:
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo_async)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_file.write_text(str(port))
        await server.wait_for_termination()

    asyncio.run(serve())


# --- request payload -----------------------------------------------------------------------


def _classify_payload() -> bytes:
    """A serialized ClassifyRequest: one 8x8 uint8 image of the digits model, top_k=1."""
    from proto.cnn.v1 import classifier_pb2 as pb

    x = (np.arange(64, dtype=np.uint8) % 17).reshape(1, 1, 8, 8)
    request = pb.ClassifyRequest(
        model=MODEL,
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
        top_k=1,
    )
    return request.SerializeToString()


def grpc_frame(message: bytes) -> bytes:
    """The HTTP/2 DATA payload of a unary gRPC request carrying `message`, uncompressed.

    Layout: 1 byte compressed flag (0), 4-byte big-endian message length, message.

    Raises:
        ValueError: the message is longer than the 4-byte length allows (2**32 - 1 bytes).
    """
    if len(message) > 0xFFFFFFFF:
        raise ValueError(f"message: {len(message)} bytes, a gRPC frame holds at most 2**32 - 1")
    return b"\x00" + len(message).to_bytes(4, "big") + message


# --- h2load: command, log and summary ------------------------------------------------------


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


# --- server metrics ------------------------------------------------------------------------


def grpc_codes(exposition: str, method: str) -> dict[str, int]:
    """Per status code, the requests of `method` counted in `cnn_grpc_requests_total`.

    Args:
        exposition: a Prometheus text exposition (the server's /metrics page).
        method: full gRPC method name, e.g. "/cnn.v1.Classifier/Classify".
    """
    from prometheus_client.parser import text_string_to_metric_families

    codes: dict[str, int] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != REQUESTS_METRIC:
            continue
        for sample in family.samples:
            if sample.name == REQUESTS_METRIC + "_total" and sample.labels["method"] == method:
                code = sample.labels["code"]
                codes[code] = codes.get(code, 0) + int(sample.value)
    return codes


def codes_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per status code, how much its count grew from `before` to `after` (if it grew)."""
    grown = {code: after[code] - before.get(code, 0) for code in after}
    return {code: n for code, n in sorted(grown.items()) if n > 0}


def _scrape_codes(metrics_port: int) -> dict[str, int]:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return grpc_codes(response.read().decode(), CLASSIFY_METHOD)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Python client process -----------------------------------------------------------------


def run_client(
    address: str,
    kind: str,
    threads: int,
    start_at: float,
    duration: float,
    warmup: float,
    out: Path,
) -> None:
    """Back-to-back unary calls from `threads` threads; writes latencies (s) to `out`."""
    import grpc

    payload = _classify_payload()
    method = ECHO_METHOD if kind == "echo" else CLASSIFY_METHOD
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def loop(i: int) -> None:
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary(method)  # raw bytes: no client-side (de)serialization
            call(payload, timeout=10)  # connect + warm
            while time.time() < start_at:
                time.sleep(0.001)
            measure_from = start_at + warmup
            stop = measure_from + duration
            mine = latencies[i]
            while True:
                t0 = time.perf_counter()
                try:
                    call(payload, timeout=10)
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code()}: {exc.details()}")
                    continue
                now = time.time()
                if now >= stop:
                    break
                if now >= measure_from:
                    mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    (cpu,) = _cpu_in_window((None,), start_at + warmup, start_at + warmup + duration)
    for w in workers:
        w.join()
    out.write_text(
        json.dumps(
            {
                "latencies": [x for xs in latencies for x in xs],
                "errors": errors[:20],
                "failed": len(errors),
                "cpu_s": cpu,
            }
        )
    )


# --- orchestration -------------------------------------------------------------------------


def _process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) used so far by `pid` (None: this process)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_in_window(pids: Sequence[int | None], begin: float, end: float) -> list[float]:
    """Sleep until wall-clock `begin`, then `end`; CPU seconds each of `pids` used in between."""
    time.sleep(max(0.0, begin - time.time()))
    before = [_process_cpu(pid) for pid in pids]
    time.sleep(max(0.0, end - time.time()))
    return [_process_cpu(pid) - b for pid, b in zip(pids, before, strict=True)]


def _summarise(
    concurrency: int,
    latencies_s: Sequence[float],
    failed: int,
    duration: float,
    server_cpu: float,
    client_cpu: float,
) -> dict[str, Any]:
    arr = np.asarray(latencies_s, dtype=np.float64)
    n = len(arr)
    return {
        "concurrency": concurrency,
        "requests": n,
        "failed": failed,
        "p50_us": float(np.percentile(arr, 50) * 1e6) if n else float("nan"),
        "p99_us": float(np.percentile(arr, 99) * 1e6) if n else float("nan"),
        "throughput": n / duration,
        # CPU time per completed request in the measured window, microseconds
        "server_cpu_us": server_cpu / max(n, 1) * 1e6,
        "client_cpu_us": client_cpu / max(n, 1) * 1e6,
        "cpu_busy": (server_cpu + client_cpu) / duration / (os.cpu_count() or 1),
    }


def _wait_port(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before binding")
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for the port file")


def _wait_model(address: str, timeout: float = 120.0) -> None:
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ClassifierStub(channel)
        while time.monotonic() < deadline:
            if any(
                m.name == MODEL for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models
            ):
                return
            time.sleep(0.1)
    raise RuntimeError(f"model {MODEL!r} did not load")


def _top_class(address: str, payload: bytes) -> str:
    """Top class name of one gRPC Python Classify call with `payload`.

    Raises:
        RuntimeError: the call failed; names its status code.
    """
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = pb_grpc.ClassifierStub(channel).Classify(
                pb.ClassifyRequest.FromString(payload), timeout=10
            )
        except grpc.RpcError as exc:
            raise RuntimeError(f"check call failed: {exc.code()}: {exc.details()}") from None
    return str(reply.results[0].class_names[0])


def _check_classify(address: str, payload: bytes, expected: str, when: str) -> None:
    got = _top_class(address, payload)
    if got != expected:
        raise RuntimeError(f"Classify check {when}: top class {got!r}, expected {expected!r}")


def _level_python(
    address: str,
    kind: str,
    concurrency: int,
    processes: int,
    duration: float,
    workdir: Path,
    server_pid: int,
) -> dict[str, Any]:
    procs = min(processes, concurrency)
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    start_at = time.time() + 1.5
    warmup = 0.3
    outs = [workdir / f"{kind}-{concurrency}-{i}.json" for i in range(procs)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serving",
                "--client",
                address,
                "--kind",
                kind,
                "--threads",
                str(n),
                "--start-at",
                repr(start_at),
                "--duration",
                str(duration),
                "--warmup",
                str(warmup),
                "--out",
                str(out),
            ],
            cwd=ROOT,
        )
        for n, out in zip(per, outs, strict=True)
    ]
    (server_cpu,) = _cpu_in_window((server_pid,), start_at + warmup, start_at + warmup + duration)
    for child in children:
        if child.wait(timeout=duration + 120) != 0:
            raise RuntimeError(f"client process failed with {child.returncode}")
    lat: list[float] = []
    failed = 0
    client_cpu = 0.0
    for out in outs:
        data = json.loads(out.read_text())
        lat.extend(data["latencies"])
        failed += data["failed"]
        client_cpu += data["cpu_s"]
    return _summarise(concurrency, lat, failed, duration, server_cpu, client_cpu)


def _level_h2load(
    h2load: str,
    address: str,
    kind: str,
    concurrency: int,
    duration: float,
    workdir: Path,
    server_pid: int,
) -> dict[str, Any]:
    """One level driven by h2load; `failed` counts failed or non-2xx HTTP/2 streams only.

    h2load logs the requests whose response ended in its measured phase (after its warm-up;
    checked against its summary). It runs for our window plus a margin on both sides, and
    requests, latencies and CPU (server and h2load) are all taken over that window.
    """
    method = ECHO_METHOD if kind == "echo" else CLASSIFY_METHOD
    body = workdir / "request.grpc"
    body.write_bytes(grpc_frame(_classify_payload()))
    log = workdir / f"h2load-{kind}-{concurrency}.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log file
    output = workdir / f"h2load-{kind}-{concurrency}.out"
    command = h2load_command(
        h2load,
        f"http://{address}{method}",
        body,
        log,
        concurrency,
        H2LOAD_WARMUP_S,
        duration + 2 * H2LOAD_MARGIN_S,
    )
    begin = time.time() + H2LOAD_WARMUP_S + H2LOAD_MARGIN_S
    end = begin + duration
    with output.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        # an h2load that exited early is a zombie until waited for: its /proc entry stays
        server_cpu, load_cpu = _cpu_in_window((server_pid, proc.pid), begin, end)
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
    row = _summarise(
        concurrency,
        [r.latency_us * 1e-6 for r in inside],
        sum(not r.ok for r in logged),
        duration,
        server_cpu,
        load_cpu,
    )
    row["h2load"] = summary
    return row


def _batch_stats(address: str) -> tuple[int, int]:
    """(images inferred, forward passes) of the digits model so far (V2 statistics)."""
    code = (
        "import sys, tritonclient.grpc as tc\n"
        "c = tc.InferenceServerClient(sys.argv[1])\n"
        f"s = c.get_inference_statistics({MODEL!r}, as_json=True)['model_stats']\n"
        "print(sum(int(m.get('inference_count', 0)) for m in s),"
        " sum(int(m.get('execution_count', 0)) for m in s))\n"
    )
    # A child process: tritonclient's `inference` stubs must not share our protobuf pool.
    out = subprocess.run(
        [sys.executable, "-c", code, address], capture_output=True, text=True, check=True, cwd=ROOT
    )
    images, passes = out.stdout.split()
    return int(images), int(passes)


def _model_batch1_latency(models_dir: Path) -> float:
    """Median seconds of one local batch-1 forward pass (preprocess + predict_proba)."""
    from core.artifacts import load_artifact
    from core.repository import ModelRepository

    repo = ModelRepository(models_dir)
    loaded = load_artifact(repo.path(MODEL, repo.versions(MODEL)[-1]))
    c, h, w = loaded.meta.input.shape
    x = np.zeros((1, c, h, w), np.uint8)
    for _ in range(20):
        loaded.predict_proba(x)
    samples = []
    for _ in range(300):
        t0 = time.perf_counter()
        loaded.predict_proba(x)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _publish_digits(root: Path) -> None:
    from core.artifacts import make_meta, save_artifact
    from core.datasets import load_digits
    from core.model import Sequential
    from core.repository import ModelRepository
    from core.training import TrainConfig, fit

    data = load_digits()
    arch: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    model = Sequential.from_spec(arch, data.input_shape, seed=0)
    fit(model, data, TrainConfig.model_validate({"epochs": 2, "validation_split": 0.0}))
    meta = make_meta(
        model,
        name=MODEL,
        class_names=data.class_names,
        normalisation=data.normalisation,
        pixel_range=data.pixel_range,
    )

    def write(directory: Path) -> None:
        save_artifact(directory, model, meta)

    ModelRepository(root).publish(MODEL, write)


def _h2load_version(h2load: str) -> str:
    out = subprocess.run([h2load, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or h2load


def run_benchmark(args: argparse.Namespace) -> int:
    levels = [int(c) for c in args.concurrency.split(",")]
    h2load = None
    if args.load == "h2load":
        h2load = shutil.which("h2load")
        if h2load is None:
            print(
                "bench.serving: h2load (Debian package nghttp2-client) is not installed; run "
                "scripts/setup.sh --bench, or use --load python",
                file=sys.stderr,
            )
            return 2
        loader = f"{_h2load_version(h2load)}, 1 thread, c connections x 1 stream"
    else:
        loader = f"gRPC Python clients in up to {args.processes} processes"
    payload = _classify_payload()
    metrics_port = _free_port()
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as tmp:
        work = Path(tmp)
        models_dir = Path(args.models_dir) if args.models_dir else work / "models"
        if not args.models_dir:
            print("training a digits model for the benchmark ...", flush=True)
            _publish_digits(models_dir)
        env = {
            **os.environ,
            "CNN_MODELS_DIR": str(models_dir),
            "CNN_GRPC_ADDRESS": "127.0.0.1:0",
            "CNN_LOG_LEVEL": "WARNING",
            "CNN_METRICS_PORT": str(metrics_port),
            "CNN_METRICS_HOST": "127.0.0.1",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "--port-file", str(work / "server.port")],
            cwd=ROOT,
            env=env,
        )
        echo, echo_threads = (
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.serving",
                    "--echo-server",
                    str(work / f"echo-{stack}.port"),
                    "--echo-stack",
                    stack,
                ],
                cwd=ROOT,
            )
            for stack in ("aio", "threads")
        )
        try:
            address = f"127.0.0.1:{_wait_port(work / 'server.port', server)}"
            echo_address = f"127.0.0.1:{_wait_port(work / 'echo-aio.port', echo)}"
            threads_address = f"127.0.0.1:{_wait_port(work / 'echo-threads.port', echo_threads)}"
            _wait_model(address)
            top = _top_class(address, payload)
            model_b1 = _model_batch1_latency(models_dir)

            def level(addr: str, kind: str, c: int, pid: int) -> dict[str, Any]:
                if h2load is None:
                    return _level_python(addr, kind, c, args.processes, args.duration, work, pid)
                return _level_h2load(h2load, addr, kind, c, args.duration, work, pid)

            rows = []
            thread_rows = []
            for c in levels:
                thread_rows.append(level(threads_address, "echo", c, echo_threads.pid))
                floor = level(echo_address, "echo", c, echo.pid)
                _check_classify(address, payload, top, f"before c={c}")
                before, codes_before = _batch_stats(address), _scrape_codes(metrics_port)
                real = level(address, "classify", c, server.pid)
                after, codes_after = _batch_stats(address), _scrape_codes(metrics_port)
                _check_classify(address, payload, top, f"after c={c}")
                images, passes = after[0] - before[0], after[1] - before[1]
                real["mean_batch"] = images / passes if passes else float("nan")
                # every Classify the server answered during the level (warm-up and checks too)
                real["grpc_codes"] = codes_delta(codes_before, codes_after)
                real["grpc_non_ok"] = {k: n for k, n in real["grpc_codes"].items() if k != "OK"}
                if h2load is not None:  # the Python clients saw (and counted) gRPC errors
                    real["failed"] += sum(real["grpc_non_ok"].values())
                if real["grpc_codes"].get("OK", 0) < real["requests"]:
                    print(
                        f"warning: c={c}: {real['requests']} requests measured but the server "
                        f"answered only {real['grpc_codes'].get('OK', 0)} with OK",
                        file=sys.stderr,
                    )
                rows.append((floor, real))
        finally:
            for proc in (server, echo, echo_threads):
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print()
    print(f"load generator: {loader}")
    print(f"model batch-1 forward (local, median): {model_b1 * 1e6:.0f} us")
    print("cpu/req: server (or echo server) CPU microseconds per request; client: the load")
    print("generator's CPU per request; busy: share of all cores used by server + load")
    print(f"generator in the measured window; Classify top class {top!r} before/after each level")
    header = (
        f"{'conc':>4} | {'echo p50':>8} {'p99':>8} {'req/s':>6} {'cpu/req':>7} {'client':>6} "
        f"{'busy':>4} | {'p50':>8} {'p99':>8} {'req/s':>6} {'cpu/req':>7} {'client':>6} "
        f"{'busy':>4} {'batch':>5} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for floor, real in rows:
        cells = []
        for r in (floor, real):
            cells.append(
                f"{r['p50_us']:>6.0f}us {r['p99_us']:>6.0f}us {r['throughput']:>6.0f} "
                f"{r['server_cpu_us']:>5.0f}us {r['client_cpu_us']:>4.0f}us {r['cpu_busy']:>4.0%}"
            )
        print(
            f"{real['concurrency']:>4} | {cells[0]} | {cells[1]} {real['mean_batch']:>5.2f} "
            f"{real['failed']:>6}"
        )
    print(
        "thread-pool echo (grpc.server, 16 threads) for comparison: "
        + ", ".join(
            f"c={r['concurrency']} p50 {r['p50_us']:.0f}us {r['throughput']:.0f} req/s"
            for r in thread_rows
        )
    )
    for floor, real in rows:
        if floor["failed"] or real["grpc_non_ok"]:
            print(
                f"failures at c={real['concurrency']}: echo {floor['failed']}, "
                f"server gRPC codes {real['grpc_non_ok']}"
            )
    by_c = {real["concurrency"]: (floor, real) for floor, real in rows}
    status = 0
    if 1 in by_c:
        floor, real = by_c[1]
        budget = floor["p50_us"] + model_b1 * 1e6 + 150
        ok = real["p50_us"] <= budget
        status |= not ok
        print(
            f"target c=1: p50 {real['p50_us']:.0f}us <= echo {floor['p50_us']:.0f} + model "
            f"{model_b1 * 1e6:.0f} + 150 = {budget:.0f}us: {'PASS' if ok else 'FAIL'}"
        )
    if 1 in by_c and 32 in by_c:
        ratio = by_c[32][1]["throughput"] / by_c[1][1]["throughput"]
        echo_ratio = by_c[32][0]["throughput"] / by_c[1][0]["throughput"]
        ok = ratio >= 4
        status |= not ok
        print(
            f"target c=32: throughput {ratio:.1f}x c=1 (>= 4x): {'PASS' if ok else 'FAIL'} "
            f"(the echo floor itself: {echo_ratio:.1f}x)"
        )
    print(
        json.dumps(
            {
                "load": args.load,
                "model_batch1_us": model_b1 * 1e6,
                "levels": [
                    {"echo": f, "server": r, "echo_threads": t}
                    for (f, r), t in zip(rows, thread_rows, strict=True)
                ],
            }
        )
    )
    return status if args.strict else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", help="repository with a 'digits' model (else trained)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument(
        "--load",
        choices=("h2load", "python"),
        default="h2load",
        help="load generator: native h2load (default) or gRPC Python client processes",
    )
    parser.add_argument(
        "--processes", type=int, default=4, help="client processes (max; --load python)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    # internal roles
    parser.add_argument("--echo-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--echo-stack", default="aio", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="classify", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        run_echo_server(args.echo_server, args.echo_stack, args.workers)
        return 0
    if args.client:
        run_client(
            args.client,
            args.kind,
            args.threads,
            args.start_at,
            args.duration,
            args.warmup,
            args.out,
        )
        return 0
    return run_benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
