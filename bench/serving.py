"""Latency/throughput benchmark: `python -m bench.serving [--load h2load|python] [--duration S]`.

Starts (in separate processes) the real server and two bare gRPC echo servers
(`bench.echo`), drives each at concurrency 1, 8 and 32, and prints per level p50/p99
latency, throughput and CPU per request of the server and of the load generator, next to the
echo floor, the model's batch-1 forward latency measured locally, and the server's mean batch
size (V2 model statistics).

The floor is an echo on the server's own stack (`grpc.aio`, one event loop), so the
difference is exactly the server's work; a thread-pool `grpc.server` echo is measured too
and printed for comparison (it answers a lone client faster here, but scales worse).

Load generators (`--load`):
  h2load  (default, `bench.h2load`) nghttp2's native HTTP/2 load generator
          (`scripts/setup.sh --bench` installs it): c connections with one stream each
          post a gRPC-framed request. It cannot see gRPC status codes (they travel in HTTP
          trailers; the HTTP status is 200 even for gRPC errors), so failed = non-OK codes
          added to the server's Prometheus counter `cnn_grpc_requests_total` during the
          level + failed or non-2xx HTTP/2 streams; and one gRPC Python Classify call before
          and after each level must succeed with the same top class.
  python  (`bench.python_load`) gRPC Python client processes (threads spread over
          `--processes` processes); they cost ~160 us of CPU per request themselves, which
          dominates on a small machine.

Latency, throughput and CPU are all taken over the same wall-clock window of `--duration`
seconds after a warm-up; a request counts when its response ended inside the window.

V2 section (`--v2-concurrency`, default 1,32): the digits model and LeNet-5 (1x28x28 FP32,
`bench.lenet_model`) through V2 ModelInfer, unary and ModelStreamInfer, driven by one native
client (`bench.stream_load`: one grpc.aio process; unary = c concurrent calls, stream = c
requests in flight on one stream), next to the aio echo (unary Echo and bidi EchoStream)
driven by the same client; the stream/unary ratios come from the same client at the same
concurrency. With h2load, LeNet-5 V2 ModelInfer is also driven by h2load for reference.

Without `--models-dir` a digits model (briefly trained with `core`, `bench.digits_model`) is
published into a temporary repository, with an untrained LeNet-5. Targets checked and printed:
  c=1:  p50 <= echo p50 + model batch-1 latency + 150 us
  c=32: throughput >= 4 x throughput at c=1
  V2 c=32: streaming throughput >= 2 x unary (same native client), per model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import echo, h2load, python_load, server_probes, stream_load
from bench.digits_model import batch1_latency, publish_digits
from bench.lenet_model import LENET_MODEL, lenet_image, publish_lenet5
from bench.payload import (
    ECHO_METHOD,
    ECHO_STREAM_METHOD,
    MODEL,
    V2_INFER_METHOD,
    V2_STREAM_METHOD,
    classify_payload,
    v2_infer_payload,
)
from bench.processes import free_port, start_module, stop, wait_port_file

Row = dict[str, Any]  # one level's figures (bench.measure.summarise, plus server counters)
# (address, kind "echo" | "classify", concurrency, pid whose CPU is measured) -> row
LevelRunner = Callable[[str, str, int, int], Row]


def _server_env(models_dir: Path, metrics_port: int) -> dict[str, str]:
    """The server's settings: our repository, a free port, quiet logs, metrics on 127.0.0.1."""
    return {
        **os.environ,
        "CNN_MODELS_DIR": str(models_dir),
        "CNN_GRPC_ADDRESS": "127.0.0.1:0",
        "CNN_SERVER_PROCESSES": "1",  # one process: its pid is the one whose CPU is measured
        "CNN_LOG_LEVEL": "WARNING",
        "CNN_METRICS_PORT": str(metrics_port),
        "CNN_METRICS_HOST": "127.0.0.1",
    }


def _server_level(
    level: LevelRunner,
    address: str,
    concurrency: int,
    pid: int,
    metrics_port: int,
    payload: bytes,
    top: str,
    counts_grpc_errors: bool,
) -> Row:
    """A Classify level against the real server, with its mean batch and gRPC codes.

    A Classify call before and after must answer `top`. `counts_grpc_errors`: the load
    generator saw gRPC errors itself (Python clients); otherwise (h2load) the server's non-OK
    codes are added to `failed`.
    """
    server_probes.check_classify(address, payload, top, f"before c={concurrency}")
    before = server_probes.batch_stats(address)
    codes_before = server_probes.scrape_codes(metrics_port)
    real = level(address, "classify", concurrency, pid)
    after = server_probes.batch_stats(address)
    codes_after = server_probes.scrape_codes(metrics_port)
    server_probes.check_classify(address, payload, top, f"after c={concurrency}")
    images, passes = after[0] - before[0], after[1] - before[1]
    real["mean_batch"] = images / passes if passes else float("nan")
    # every Classify the server answered during the level (warm-up and checks too)
    real["grpc_codes"] = server_probes.codes_delta(codes_before, codes_after)
    real["grpc_non_ok"] = {k: n for k, n in real["grpc_codes"].items() if k != "OK"}
    if not counts_grpc_errors:
        real["failed"] += sum(real["grpc_non_ok"].values())
    if real["grpc_codes"].get("OK", 0) < real["requests"]:
        print(
            f"warning: c={concurrency}: {real['requests']} requests measured but the server "
            f"answered only {real['grpc_codes'].get('OK', 0)} with OK",
            file=sys.stderr,
        )
    return real


def _print_table(
    loader: str, model_b1: float, top: str, rows: Sequence[tuple[Row, Row]], thread_rows: list[Row]
) -> None:
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


def _check_targets(rows: Sequence[tuple[Row, Row]], model_b1: float) -> int:
    """Print the targets that the measured levels allow checking; 1 if one is missed."""
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
    return status


# (target name, address, unary method, stream method, stream answers, payload, pid)
V2Target = tuple[str, str, str, str, str, bytes, int]


def _v2_levels(
    targets: Sequence[V2Target], levels: Sequence[int], duration: float, work: Path
) -> list[Row]:
    """Unary and streaming rows of each target at each level, from the same native client."""
    rows = []
    for name, address, unary, stream, answers, payload, pid in targets:
        for c in levels:
            row: Row = {"target": name, "concurrency": c}
            for mode, method in (("unary", unary), ("stream", stream)):
                row[mode] = stream_load.level(
                    address, method, mode, answers, payload, c, duration, work, pid
                )
            rows.append(row)
    return rows


def _print_v2_table(rows: Sequence[Row], h2load_rows: Sequence[Row]) -> None:
    print()
    print("V2 inference, one native grpc.aio client process (bench.stream_load): unary = c")
    print("concurrent ModelInfer calls, stream = c requests in flight on one ModelStreamInfer")
    print("(echo: unary Echo / bidi EchoStream on the aio echo server); cpu/req as above")
    header = (
        f"{'target':>7} {'conc':>4} | {'unary p50':>9} {'p99':>8} {'req/s':>6} {'cpu/req':>7} "
        f"{'client':>6} | {'stream p50':>10} {'p99':>8} {'req/s':>6} {'cpu/req':>7} "
        f"{'client':>6} | {'stream/unary':>12} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = []
        for mode, width in (("unary", 7), ("stream", 8)):
            r = row[mode]
            cells.append(
                f"{r['p50_us']:>{width}.0f}us {r['p99_us']:>6.0f}us {r['throughput']:>6.0f} "
                f"{r['server_cpu_us']:>5.0f}us {r['client_cpu_us']:>4.0f}us"
            )
        ratio = row["stream"]["throughput"] / max(row["unary"]["throughput"], 1e-9)
        failed = row["unary"]["failed"] + row["stream"]["failed"]
        print(
            f"{row['target']:>7} {row['concurrency']:>4} | {cells[0]} | {cells[1]} | "
            f"{ratio:>11.2f}x {failed:>6}"
        )
    for r in h2load_rows:
        print(
            f"h2load, LeNet-5 V2 ModelInfer c={r['concurrency']}: p50 {r['p50_us']:.0f}us "
            f"p99 {r['p99_us']:.0f}us {r['throughput']:.0f} req/s, server cpu/req "
            f"{r['server_cpu_us']:.0f}us, non-OK codes {r['grpc_non_ok']}"
        )
    for row in rows:
        for mode in ("unary", "stream"):
            if row[mode]["errors"]:
                where = f"{row['target']} c={row['concurrency']} {mode}"
                print(f"errors {where}: {row[mode]['errors'][:3]}")


def _check_v2_targets(rows: Sequence[Row]) -> int:
    """Streaming >= 2x unary throughput at c=32 for each model; 1 if one is missed."""
    status = 0
    for row in rows:
        if row["concurrency"] != 32:
            continue
        ratio = row["stream"]["throughput"] / max(row["unary"]["throughput"], 1e-9)
        if row["target"] == "echo":
            print(f"V2 c=32 echo floor: stream/unary {ratio:.2f}x")
            continue
        ok = ratio >= 2
        status |= not ok
        print(
            f"target V2 c=32 {row['target']}: stream {row['stream']['throughput']:.0f} req/s = "
            f"{ratio:.2f}x unary {row['unary']['throughput']:.0f} (>= 2x): "
            f"{'PASS' if ok else 'FAIL'}"
        )
    return status


def run_benchmark(args: argparse.Namespace) -> int:
    levels = [int(c) for c in args.concurrency.split(",")]
    h2load_exe = None
    if args.load == "h2load":
        h2load_exe = shutil.which("h2load")
        if h2load_exe is None:
            print(
                "bench.serving: h2load (Debian package nghttp2-client) is not installed; run "
                "scripts/setup.sh --bench, or use --load python",
                file=sys.stderr,
            )
            return 2
        loader = f"{h2load.version(h2load_exe)}, 1 thread, c connections x 1 stream"
    else:
        loader = f"gRPC Python clients in up to {args.processes} processes"
    payload = classify_payload()
    metrics_port = free_port()
    load_before = os.getloadavg()[0]  # others' work on the machine skews every figure
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as tmp:
        work = Path(tmp)

        def level(address: str, kind: str, concurrency: int, pid: int) -> Row:
            if h2load_exe is None:
                return python_load.level(
                    address, kind, concurrency, args.processes, args.duration, work, pid
                )
            return h2load.level(h2load_exe, address, kind, concurrency, args.duration, work, pid)

        models_dir = Path(args.models_dir) if args.models_dir else work / "models"
        if not args.models_dir:
            print("training a digits model for the benchmark ...", flush=True)
            publish_digits(models_dir)
            publish_lenet5(models_dir)
        server = start_module(
            "server",
            ["--port-file", str(work / "server.port")],
            env=_server_env(models_dir, metrics_port),
        )
        echo_aio = start_module("bench.echo", echo.command(work / "echo-aio.port", "aio"))
        echo_threads = start_module(
            "bench.echo", echo.command(work / "echo-threads.port", "threads")
        )
        try:
            address = f"127.0.0.1:{wait_port_file(work / 'server.port', server)}"
            echo_address = f"127.0.0.1:{wait_port_file(work / 'echo-aio.port', echo_aio)}"
            threads_address = (
                f"127.0.0.1:{wait_port_file(work / 'echo-threads.port', echo_threads)}"
            )
            server_probes.wait_model(address)
            top = server_probes.top_class(address, payload)
            model_b1 = batch1_latency(models_dir)
            rows = []
            thread_rows = []
            for c in levels:
                thread_rows.append(level(threads_address, "echo", c, echo_threads.pid))
                floor = level(echo_address, "echo", c, echo_aio.pid)
                real = _server_level(
                    level,
                    address,
                    c,
                    server.pid,
                    metrics_port,
                    payload,
                    top,
                    counts_grpc_errors=h2load_exe is None,
                )
                rows.append((floor, real))
            v2_levels = [int(c) for c in args.v2_concurrency.split(",") if c]
            targets: list[V2Target] = [
                ("echo", echo_address, ECHO_METHOD, ECHO_STREAM_METHOD, "echo",
                 v2_infer_payload(MODEL, _digits_image()), echo_aio.pid),
                ("digits", address, V2_INFER_METHOD, V2_STREAM_METHOD, "infer",
                 v2_infer_payload(MODEL, _digits_image()), server.pid),
            ]  # fmt: skip
            lenet = v2_infer_payload(LENET_MODEL, lenet_image())
            if _has_model(models_dir, LENET_MODEL):
                server_probes.wait_model(address, name=LENET_MODEL)
                targets.append(
                    ("lenet5", address, V2_INFER_METHOD, V2_STREAM_METHOD, "infer", lenet,
                     server.pid)
                )  # fmt: skip
            v2_rows = _v2_levels(targets, v2_levels, args.duration, work) if v2_levels else []
            h2load_rows: list[Row] = []
            if h2load_exe is not None and _has_model(models_dir, LENET_MODEL):
                for c in v2_levels:
                    before = server_probes.scrape_codes(metrics_port, V2_INFER_METHOD)
                    row = h2load.level(
                        h2load_exe, address, "classify", c, args.duration, work, server.pid,
                        request=(V2_INFER_METHOD, lenet),
                    )  # fmt: skip
                    after = server_probes.scrape_codes(metrics_port, V2_INFER_METHOD)
                    codes = server_probes.codes_delta(before, after)
                    row["grpc_non_ok"] = {k: n for k, n in codes.items() if k != "OK"}
                    h2load_rows.append(row)
        finally:
            stop((server, echo_aio, echo_threads))
    _print_table(loader, model_b1, top, rows, thread_rows)
    print(f"machine load average (1 min): {load_before:.2f} at the start, ", end="")
    print(f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} cores)")
    _print_v2_table(v2_rows, h2load_rows)
    status = _check_targets(rows, model_b1)
    status |= _check_v2_targets(v2_rows)
    print(
        json.dumps(
            {
                "load": args.load,
                "model_batch1_us": model_b1 * 1e6,
                "levels": [
                    {"echo": f, "server": r, "echo_threads": t}
                    for (f, r), t in zip(rows, thread_rows, strict=True)
                ],
                "v2": v2_rows,
                "v2_h2load_lenet5": h2load_rows,
            }
        )
    )
    return status if args.strict else 0


def _digits_image() -> np.ndarray:
    """The image of the Classify payload, (1, 1, 8, 8) uint8."""
    return (np.arange(64, dtype=np.uint8) % 17).reshape(1, 1, 8, 8)


def _has_model(models_dir: Path, name: str) -> bool:
    from core.repository import ModelRepository

    return bool(ModelRepository(models_dir).versions(name))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", help="repository with a 'digits' model (else trained)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument(
        "--v2-concurrency", default="1,32", help="levels of the V2 unary/stream section ('' skips)"
    )
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
    return run_benchmark(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
