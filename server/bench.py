"""Latency/throughput benchmark: `python -m server.bench [--models-dir DIR] [--duration S]`.

Starts (in separate processes) the real server and a bare gRPC echo server, then drives each
with separate client processes at concurrency 1, 8 and 32 (threads spread over processes),
and prints p50/p99 latency and throughput per level next to the echo floor, the model's
batch-1 forward latency measured locally, and the server's mean batch size.

Without `--models-dir` a digits model (briefly trained with `core`) is published into a
temporary repository. Targets checked and printed:
  c=1:  p50 <= echo p50 + model batch-1 latency + 150 us
  c=32: throughput >= 4 x throughput at c=1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np

ECHO_METHOD = "/bench.Echo/Echo"
MODEL = "digits"
ROOT = Path(__file__).resolve().parent.parent


# --- echo server (floor) -------------------------------------------------------------------


def run_echo_server(port_file: Path, workers: int) -> None:
    import grpc

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    server.wait_for_termination()


# --- client process ------------------------------------------------------------------------


def _classify_payload() -> bytes:
    from proto.cnn.v1 import classifier_pb2 as pb

    x = (np.arange(64, dtype=np.uint8) % 17).reshape(1, 1, 8, 8)
    request = pb.ClassifyRequest(
        model=MODEL,
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
        top_k=1,
    )
    return request.SerializeToString()


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
    method = ECHO_METHOD if kind == "echo" else "/cnn.v1.Classifier/Classify"
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
    cpu = _cpu_in_window(None, start_at + warmup, start_at + warmup + duration)
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


def _cpu_in_window(pid: int | None, begin: float, end: float) -> float:
    """Sleep until wall-clock `begin`, then `end`; CPU seconds `pid` used in between."""
    time.sleep(max(0.0, begin - time.time()))
    before = _process_cpu(pid)
    time.sleep(max(0.0, end - time.time()))
    return _process_cpu(pid) - before


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


def _level(
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
                "server.bench",
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
    server_cpu = _cpu_in_window(server_pid, start_at + warmup, start_at + warmup + duration)
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
    arr = np.asarray(lat)
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "failed": failed,
        "p50_us": float(np.percentile(arr, 50) * 1e6) if len(arr) else float("nan"),
        "p99_us": float(np.percentile(arr, 99) * 1e6) if len(arr) else float("nan"),
        "throughput": len(lat) / duration,
        # CPU time per completed request in the measured window, microseconds
        "server_cpu_us": server_cpu / max(len(lat), 1) * 1e6,
        "client_cpu_us": client_cpu / max(len(lat), 1) * 1e6,
        "cpu_busy": (server_cpu + client_cpu) / duration / (os.cpu_count() or 1),
    }


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


def run_benchmark(args: argparse.Namespace) -> int:
    levels = [int(c) for c in args.concurrency.split(",")]
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
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "--port-file", str(work / "server.port")],
            cwd=ROOT,
            env=env,
        )
        echo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.bench",
                "--echo-server",
                str(work / "echo.port"),
                "--workers",
                env.get("CNN_WORKERS", "16"),
            ],
            cwd=ROOT,
        )
        try:
            address = f"127.0.0.1:{_wait_port(work / 'server.port', server)}"
            echo_address = f"127.0.0.1:{_wait_port(work / 'echo.port', echo)}"
            _wait_model(address)
            model_b1 = _model_batch1_latency(models_dir)
            rows = []
            for c in levels:
                floor = _level(
                    echo_address, "echo", c, args.processes, args.duration, work, echo.pid
                )
                before = _batch_stats(address)
                real = _level(
                    address, "classify", c, args.processes, args.duration, work, server.pid
                )
                after = _batch_stats(address)
                images, passes = after[0] - before[0], after[1] - before[1]
                real["mean_batch"] = images / passes if passes else float("nan")
                rows.append((floor, real))
        finally:
            for proc in (server, echo):
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print()
    print(f"model batch-1 forward (local, median): {model_b1 * 1e6:.0f} us")
    print("cpu/req: server (or echo server) and client CPU microseconds per request;")
    print("busy: share of all cores used by server + clients during the measured window")
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
        ok = ratio >= 4
        status |= not ok
        print(f"target c=32: throughput {ratio:.1f}x c=1 (>= 4x): {'PASS' if ok else 'FAIL'}")
    print(
        json.dumps(
            {
                "model_batch1_us": model_b1 * 1e6,
                "levels": [{"echo": f, "server": r} for f, r in rows],
            }
        )
    )
    return status if args.strict else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.bench", description=__doc__)
    parser.add_argument("--models-dir", help="repository with a 'digits' model (else trained)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--processes", type=int, default=4, help="client processes (max)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    # internal roles
    parser.add_argument("--echo-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="classify", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        run_echo_server(args.echo_server, args.workers)
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
