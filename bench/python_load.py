"""gRPC Python clients as the serving benchmark's load generator (`--load python`).

    python -m bench.python_load --address HOST:PORT --kind echo|classify --threads N
        --start-at EPOCH_S --duration S --warmup S --out PATH

A client process makes back-to-back unary calls from `--threads` threads and writes the
latencies of the calls that ended inside its window, its failures and its CPU time to `--out`
as JSON. :func:`level` spreads one level's concurrency over a few such processes. Each call
costs ~160 us of client CPU, which dominates on a small machine: h2load is the default.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measure import cpu_in_window, summarise
from bench.payload import METHODS, classify_payload, method_of
from bench.processes import start_module

# clients connect and make one call before this many seconds from now, then start together
START_DELAY_S = 1.5
WARMUP_S = 0.3


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

    payload = classify_payload()
    method = method_of(kind)
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
    (cpu,) = cpu_in_window((None,), start_at + warmup, start_at + warmup + duration)
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


def level(
    address: str,
    kind: str,
    concurrency: int,
    processes: int,
    duration: float,
    workdir: Path,
    server_pid: int,
) -> dict[str, Any]:
    """One level: `concurrency` client threads spread over up to `processes` processes.

    Server CPU is taken over the clients' common window; `failed` counts the gRPC errors the
    clients saw.
    """
    procs = min(processes, concurrency)
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    start_at = time.time() + START_DELAY_S
    outs = [workdir / f"{kind}-{concurrency}-{i}.json" for i in range(procs)]
    children = [
        start_module("bench.python_load", command(address, kind, n, start_at, duration, out))
        for n, out in zip(per, outs, strict=True)
    ]
    (server_cpu,) = cpu_in_window(
        (server_pid,), start_at + WARMUP_S, start_at + WARMUP_S + duration
    )
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
    return summarise(concurrency, lat, failed, duration, server_cpu, client_cpu)


def command(
    address: str, kind: str, threads: int, start_at: float, duration: float, out: Path
) -> list[str]:
    """The `python -m bench.python_load` arguments of one client process."""
    return [
        "--address",
        address,
        "--kind",
        kind,
        "--threads",
        str(threads),
        "--start-at",
        repr(start_at),
        "--duration",
        str(duration),
        "--warmup",
        str(WARMUP_S),
        "--out",
        str(out),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.python_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", required=True, help="HOST:PORT of the server or echo")
    parser.add_argument("--kind", choices=sorted(METHODS), default="classify")
    parser.add_argument("--threads", type=int, default=1, help="client threads of this process")
    parser.add_argument(
        "--start-at", type=float, required=True, help="wall-clock start, seconds since the epoch"
    )
    parser.add_argument("--duration", type=float, required=True, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds before that")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    args = parser.parse_args(argv)
    run_client(
        args.address, args.kind, args.threads, args.start_at, args.duration, args.warmup, args.out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
