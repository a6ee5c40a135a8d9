"""One serving process against two: `python -m bench.serving_processes [--duration S]`.

Starts the real server with CNN_SERVER_PROCESSES=1, then =2 (the supervisor and two serving
processes on one port), and drives V2 `ModelInfer` with h2load (`bench.h2load`) at concurrency
1 and 32 for two models:
  lenet5  LeNet-5 (core.zoo.lenet5, untrained weights), one 1x28x28 FP32 image per request;
  digits  the small digits CNN (bench.digits_model), one 1x8x8 UINT8 image per request.
The floor is the `grpc.aio` echo (`bench.echo`) in 1 and 2 processes sharing a port, sent the
same bytes as the lenet5 request: what the gRPC stack alone gives with one and two processes.

Every level runs `--rounds` times, with 1 and 2 processes back to back each time (all the
servers and echoes run side by side, idle when not driven), and the medians are printed: the
load of a shared machine drifts, and this way it weighs on both sides of a ratio alike.

Printed per level: p50/p99 latency, requests/s, server CPU per request (all serving processes
and the supervisor), h2load's CPU per request, the share of all cores both used, and the ratio
2 processes / 1 process. Latency, throughput and CPU are taken over the same window (as in
`bench.serving`); failed = failed HTTP/2 streams + non-OK gRPC codes that the server's
Prometheus counter saw (h2load cannot see gRPC codes), and one gRPC Python ModelInfer call before
and after each level must succeed.

On a shared machine the measured ratios move with everything else that runs; the CPU figures
move less, so a "CPU ceiling" is printed too: requests/s that the measured CPU per request
allows with nothing else running (one process: at most one core, its event loop; two: all
cores, shared with h2load).

Targets checked and printed (on one machine, in one run):
  c=32: throughput with 2 processes >= 1.5 x with 1 process
  c=1:  p50 with 2 processes <= 1.1 x p50 with 1 process (not worse, within noise)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import echo, h2load, server_probes
from bench.digits_model import publish_digits
from bench.measure import cpu_in_window, summarise
from bench.payload import ECHO_METHOD
from bench.processes import free_port, start_module, stop, wait_port_file

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
LENET = "lenet5"
DIGITS = "digits"
LEVELS = (1, 32)
PROCESSES = (1, 2)
Row = dict[str, Any]


def publish_lenet(root: Path) -> int:
    """Publish LeNet-5 (seed 0, untrained) taking 1x28x28 FP32 pixels in [0, 1] as `lenet5`."""
    from core.artifacts import make_meta, save_artifact
    from core.datasets import Normalisation
    from core.model import Sequential
    from core.repository import ModelRepository
    from core.zoo import lenet5

    model = Sequential.from_spec(lenet5(), (1, 28, 28), seed=0)
    meta = make_meta(
        model,
        name=LENET,
        class_names=[str(i) for i in range(10)],
        normalisation=Normalisation(mean=[0.5], std=[0.25]),
        pixel_range=(0.0, 1.0),
    )
    meta = meta.model_copy(update={"input": replace(meta.input, dtype="float32")})

    def write(directory: Path) -> None:
        save_artifact(directory, model, meta)

    return ModelRepository(root).publish(LENET, write)


def infer_payload(model: str) -> bytes:
    """A serialized ModelInferRequest with one image for `model` (raw_input_contents)."""
    from proto.inference import grpc_service_pb2 as v2

    if model == LENET:
        x: np.ndarray = np.linspace(0.0, 1.0, 28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
        datatype = "FP32"
    else:
        x = ((np.arange(64, dtype=np.uint8) % 17).reshape(1, 1, 8, 8)).astype(np.uint8)
        datatype = "UINT8"
    request = v2.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype=datatype, shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request.SerializeToString()


def check_infer(address: str, payload: bytes, when: str) -> None:
    """One gRPC Python ModelInfer call with `payload` must succeed and return outputs.

    Raises:
        RuntimeError: it failed; names the status code and `when`.
    """
    import grpc

    from proto.inference import grpc_service_pb2 as v2

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            INFER_METHOD, response_deserializer=v2.ModelInferResponse.FromString
        )
        try:
            reply = call(payload, timeout=10)
        except grpc.RpcError as exc:
            raise RuntimeError(f"ModelInfer {when}: {exc.code()}: {exc.details()}") from None
    if not reply.outputs:
        raise RuntimeError(f"ModelInfer {when}: no outputs")


def wait_models(address: str, names: Sequence[str], timeout: float = 300.0) -> None:
    """Poll V2 ModelInfer until every model in `names` answers (loaded and warmed).

    Raises:
        RuntimeError: one does not after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                check_infer(address, infer_payload(name), "at start")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def h2load_level(
    exe: str, address: str, method: str, body: bytes, concurrency: int, duration: float,
    workdir: Path, pids: Sequence[int],
) -> Row:  # fmt: skip
    """One level: `body` posted to `method` by h2load; CPU summed over `pids` (the server).

    Like `bench.h2load.level` but for any method and body, and a server of several processes.
    """
    name = f"{method.rsplit('/', 1)[1]}-{len(body)}-{concurrency}-{len(pids)}"
    body_file = workdir / f"{name}.grpc"
    body_file.write_bytes(h2load.grpc_frame(body))
    log = workdir / f"{name}.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log file
    output = workdir / f"{name}.out"
    command = h2load.h2load_command(
        exe, f"http://{address}{method}", body_file, log, concurrency, h2load.WARMUP_S,
        duration + 2 * h2load.MARGIN_S,
    )  # fmt: skip
    begin = time.time() + h2load.WARMUP_S + h2load.MARGIN_S
    end = begin + duration
    with output.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        cpu = cpu_in_window((*pids, proc.pid), begin, end)
        if proc.wait(timeout=duration + 60) != 0:
            raise RuntimeError(f"h2load failed ({proc.returncode}): {output.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = h2load.parse_h2load_log(log.read_text())
    begin_us, end_us = begin * 1e6, end * 1e6
    if not logged or max(r.end_us for r in logged) < end_us:
        raise RuntimeError(f"h2load's measured phase did not cover the window ({log})")
    inside = [r for r in logged if begin_us <= r.end_us < end_us]
    return summarise(
        concurrency,
        [r.latency_us * 1e-6 for r in inside],
        sum(not r.ok for r in logged),
        duration,
        sum(cpu[:-1]),
        cpu[-1],
    )


def _server_env(models_dir: Path, processes: int, metrics_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CNN_MODELS_DIR": str(models_dir),
        "CNN_GRPC_ADDRESS": "127.0.0.1:0",
        "CNN_SERVER_PROCESSES": str(processes),
        "CNN_LOG_LEVEL": "WARNING",
        "CNN_METRICS_PORT": str(metrics_port),
    }


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


@dataclass
class Target:
    """A running server (or echo) under test: where it listens and whose CPU it uses."""

    address: str
    pids: list[int]
    metrics_port: int | None = None  # the real server's (gRPC codes); None for an echo


def start_server(
    processes: int, models_dir: Path, work: Path, procs: list[subprocess.Popen[bytes]]
) -> Target:
    """The real server with `processes` serving processes (appended to `procs` to stop)."""
    metrics_port = free_port()
    port_file = work / f"server-{processes}.port"
    env = _server_env(models_dir, processes, metrics_port)
    server = start_module("server", ["--port-file", str(port_file)], env=env)
    procs.append(server)
    address = f"127.0.0.1:{wait_port_file(port_file, server, timeout=900)}"
    pids = [server.pid, *child_pids(server.pid)] if processes > 1 else [server.pid]
    if len(pids) != processes + (processes > 1):
        raise RuntimeError(f"expected {processes} serving processes, found pids {pids}")
    wait_models(address, (LENET, DIGITS))
    return Target(address, pids, metrics_port)


def start_echo(processes: int, work: Path, procs: list[subprocess.Popen[bytes]]) -> Target:
    """`processes` grpc.aio echo processes sharing one port (appended to `procs` to stop)."""
    first_file = work / f"echo-{processes}-0.port"
    procs.append(start_module("bench.echo", echo.command(first_file, "aio")))
    port = wait_port_file(first_file, procs[-1])
    pids = [procs[-1].pid]
    for i in range(1, processes):
        path = work / f"echo-{processes}-{i}.port"
        procs.append(start_module("bench.echo", echo.command(path, "aio", port)))
        wait_port_file(path, procs[-1])
        pids.append(procs[-1].pid)
    return Target(f"127.0.0.1:{port}", pids)


def measure(exe: str, target: Target, kind: str, c: int, duration: float, work: Path) -> Row:
    """One level of `kind` (a model name, or "echo" with the lenet5 bytes) against `target`."""
    if target.metrics_port is None:
        return h2load_level(
            exe, target.address, ECHO_METHOD, infer_payload(LENET), c, duration, work, target.pids
        )
    payload = infer_payload(kind)
    check_infer(target.address, payload, f"before {kind} c={c}")
    before = server_probes.grpc_codes(_scrape(target.metrics_port), INFER_METHOD)
    row = h2load_level(exe, target.address, INFER_METHOD, payload, c, duration, work, target.pids)
    after = server_probes.grpc_codes(_scrape(target.metrics_port), INFER_METHOD)
    check_infer(target.address, payload, f"after {kind} c={c}")
    grown = server_probes.codes_delta(before, after)
    row["failed"] += sum(n for code, n in grown.items() if code != "OK")
    return row


def median_row(rows: Sequence[Row]) -> Row:
    """Per figure, the median over the rounds (failed: the sum)."""
    keys = ("p50_us", "p99_us", "throughput", "server_cpu_us", "client_cpu_us", "cpu_busy")
    merged: Row = {key: float(np.median([r[key] for r in rows])) for key in keys}
    merged["failed"] = sum(r["failed"] for r in rows)
    merged["rounds"] = rows
    return merged


def _cells(row: Row) -> str:
    return (
        f"{row['p50_us']:>6.0f}us {row['p99_us']:>6.0f}us {row['throughput']:>6.0f} "
        f"{row['server_cpu_us']:>5.0f}us {row['client_cpu_us']:>4.0f}us {row['cpu_busy']:>4.0%} "
        f"{row['failed']:>3}"
    )


def report(results: dict[int, dict[tuple[str, int], Row]]) -> int:
    """Print the table and the targets; 1 if a target is missed."""
    print()
    print("per level: p50, p99, req/s, server CPU/request (all its processes), h2load CPU/request,")
    print(
        "busy = share of all cores used by server + h2load, failed requests; x = 2 procs / 1 proc"
    )
    head = f"{'level':<12} | {'1 process':^50} | {'2 processes':^50} | {'req/s x':>7} {'p50 x':>5}"
    print(head)
    print("-" * len(head))
    for key in results[1]:
        one, two = results[1][key], results[2][key]
        name = f"{key[0]} c={key[1]}"
        print(
            f"{name:<12} | {_cells(one)} | {_cells(two)} | "
            f"{two['throughput'] / one['throughput']:>6.2f}x {two['p50_us'] / one['p50_us']:>4.2f}x"
        )
    for key in results[1]:
        ratios = [
            two["throughput"] / one["throughput"]
            for one, two in zip(results[1][key]["rounds"], results[2][key]["rounds"], strict=True)
        ]
        print(f"req/s x per round, {key[0]} c={key[1]}: " + ", ".join(f"{r:.2f}" for r in ratios))
    status = 0
    for model in (LENET, DIGITS):
        ratio = results[2][(model, 32)]["throughput"] / results[1][(model, 32)]["throughput"]
        floor = results[2][("echo", 32)]["throughput"] / results[1][("echo", 32)]["throughput"]
        ok = ratio >= 1.5
        status |= not ok
        print(
            f"target {model} c=32: 2 processes {ratio:.2f}x 1 process (>= 1.5x): "
            f"{'PASS' if ok else 'FAIL'} (echo floor: {floor:.2f}x)"
        )
        p1, p2 = results[1][(model, 1)]["p50_us"], results[2][(model, 1)]["p50_us"]
        ok = p2 <= 1.1 * p1
        status |= not ok
        print(
            f"target {model} c=1: p50 {p2:.0f}us with 2 processes <= 1.1 x {p1:.0f}us: "
            f"{'PASS' if ok else 'FAIL'}"
        )
    # What the CPU figures allow on a machine with nothing else running: one process is held to
    # one core by its event loop; two share the cores with the load generator.
    cores = len(os.sched_getaffinity(0))
    for model in (LENET, DIGITS, "echo"):
        one, two = results[1][(model, 32)], results[2][(model, 32)]
        alone = min(1 / one["server_cpu_us"], cores / (one["server_cpu_us"] + one["client_cpu_us"]))
        shared = cores / (two["server_cpu_us"] + two["client_cpu_us"])
        print(
            f"CPU ceiling {model} c=32 (cores / CPU per request): 1 process {alone * 1e6:.0f} "
            f"req/s, 2 processes {shared * 1e6:.0f} req/s: {shared / alone:.2f}x"
        )
    failed = sum(r["failed"] for by in results.values() for r in by.values())
    if failed:
        print(f"FAILED REQUESTS: {failed}")
        status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving_processes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per level")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every level (medians)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    exe = shutil.which("h2load")
    if exe is None:
        print("h2load (nghttp2-client) is not installed: scripts/setup.sh --bench", file=sys.stderr)
        return 2
    print(f"load generator: {h2load.version(exe)}, 1 thread, c connections x 1 stream")
    print(f"cores: {len(os.sched_getaffinity(0))}")
    kinds = [(kind, c) for kind in (LENET, DIGITS, "echo") for c in LEVELS]
    samples: dict[int, dict[tuple[str, int], list[Row]]] = {
        n: {k: [] for k in kinds} for n in PROCESSES
    }
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="cnn-bench-procs-") as tmp:
        work = Path(tmp)
        models = work / "models"
        print("publishing lenet5 and training digits ...", flush=True)
        publish_lenet(models)
        publish_digits(models)
        try:
            servers = {n: start_server(n, models, work, procs) for n in PROCESSES}
            echoes = {n: start_echo(n, work, procs) for n in PROCESSES}
            # rounds, 1 and 2 processes back to back per level: drifts in the machine's load
            # hit both sides of a ratio alike
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds} ...", flush=True)
                for kind, c in kinds:
                    for n in PROCESSES:
                        target = echoes[n] if kind == "echo" else servers[n]
                        samples[n][(kind, c)].append(
                            measure(exe, target, kind, c, args.duration, work)
                        )
        finally:
            stop(procs)
    results = {n: {k: median_row(rows) for k, rows in by.items()} for n, by in samples.items()}
    status = report(results)
    print(
        json.dumps(
            {str(n): {f"{m} c={c}": row for (m, c), row in by.items()} for n, by in results.items()}
        )
    )
    return status if args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
