"""A native gRPC client for the V2 levels of the serving benchmark: unary calls or one
bidirectional stream, with `--concurrency` requests in flight, in a process of its own.

    python -m bench.stream_load --address HOST:PORT --method METHOD --mode unary|stream
        --answers infer|echo --payload PATH --concurrency N --start-at EPOCH_S
        --duration S --warmup S --out PATH

The same client (one `grpc.aio` channel, one event loop) drives both modes, so their ratio
compares the server's two paths and not two load generators:
  unary   N coroutines make back-to-back unary calls (N HTTP/2 streams at a time).
  stream  one call; N requests written before the first read, then one more written per
          answer read, so N are always in flight. Each request gets its own id and answers are
          matched on it (the server answers in completion order).
The request bytes are sent as they are (no client-side serialization); stream answers are
parsed for their id (`--answers infer`: ModelStreamInferResponse; `echo`: the request itself),
which the unary mode does not need: the stream mode pays that parse.

Writes to `--out` (JSON) the latencies of requests answered inside the window, failures and
the client's CPU seconds in the window. h2load cannot drive a bidirectional stream (one request
per HTTP/2 stream only): hence this client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.measure import summarise
from bench.payload import with_id
from bench.processes import start_module

MODES = ("unary", "stream")
ANSWERS = ("infer", "echo")
START_DELAY_S = 1.5
WARMUP_S = 0.3
CALL_TIMEOUT_S = 30.0


class Window:
    """Wall-clock measurement window: latencies of answers that ended inside it."""

    def __init__(self, begin: float, end: float) -> None:
        self.begin = begin
        self.end = end
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def record(self, seconds: float) -> None:
        now = time.time()
        if self.begin <= now < self.end:
            self.latencies.append(seconds)

    def over(self) -> bool:
        return time.time() >= self.end


def _answer_parser(answers: str) -> Callable[[bytes], tuple[bytes, str]]:
    """(request id, error message or "") of a stream answer."""
    from proto.inference import grpc_service_pb2 as v2

    if answers == "echo":

        def echo(data: bytes) -> tuple[bytes, str]:
            return v2.ModelInferRequest.FromString(data).id.encode(), ""

        return echo

    def infer(data: bytes) -> tuple[bytes, str]:
        answer = v2.ModelStreamInferResponse.FromString(data)
        return answer.infer_response.id.encode(), answer.error_message

    return infer


async def _unary(channel: Any, method: str, payload: bytes, n: int, window: Window) -> None:
    import grpc

    call = channel.unary_unary(method)
    await call(payload, timeout=CALL_TIMEOUT_S)  # connect + warm

    async def loop() -> None:
        while not window.over():
            t0 = time.perf_counter()
            try:
                await call(payload, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                window.errors.append(f"{exc.code()}: {exc.details()}")
                continue
            window.record(time.perf_counter() - t0)

    await asyncio.gather(*(loop() for _ in range(n)))


async def _stream(
    channel: Any, method: str, payload: bytes, n: int, window: Window, answers: str
) -> None:
    # A writer and a reader task: a write and a read are outstanding at the same time (one
    # coroutine alternating them would add a round trip per request).
    import grpc

    parse = _answer_parser(answers)
    call = channel.stream_stream(method)(timeout=None)
    sent: dict[bytes, float] = {}
    slots = asyncio.Semaphore(n)
    writing_done = asyncio.Event()

    async def write() -> None:
        counter = 0
        while True:
            await slots.acquire()
            if window.over():
                break
            request_id = b"%d" % counter
            counter += 1
            sent[request_id] = time.perf_counter()
            await call.write(with_id(payload, request_id))
        writing_done.set()
        await call.done_writing()

    async def read() -> None:
        while not (writing_done.is_set() and not sent):
            data = await call.read()
            if data is grpc.aio.EOF:
                break
            now = time.perf_counter()
            request_id, error = parse(data)
            started = sent.pop(request_id)
            if error:
                window.errors.append(error)
            else:
                window.record(now - started)
            slots.release()

    await asyncio.gather(write(), read())
    await call.code()


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    import grpc

    payload = args.payload.read_bytes()
    begin = args.start_at + args.warmup
    window = Window(begin, begin + args.duration)
    cpu: list[float] = []

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, begin - time.time()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, window.end - time.time()))
        cpu.append(time.process_time() - before)

    async with grpc.aio.insecure_channel(args.address) as channel:
        await channel.channel_ready()
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        meter = asyncio.create_task(measure_cpu())
        if args.mode == "unary":
            await _unary(channel, args.method, payload, args.concurrency, window)
        else:
            await _stream(channel, args.method, payload, args.concurrency, window, args.answers)
        await meter
    return {
        "latencies": window.latencies,
        "errors": window.errors[:20],
        "failed": len(window.errors),
        "cpu_s": cpu[0],
    }


def level(
    address: str,
    method: str,
    mode: str,
    answers: str,
    payload: bytes,
    concurrency: int,
    duration: float,
    workdir: Path,
    server_pid: int,
) -> dict[str, Any]:
    """One level driven by one client process; server CPU over the client's window."""
    from bench.measure import cpu_in_window

    name = f"{method.rsplit('/', 1)[1]}-{mode}-{concurrency}"
    body = workdir / f"{name}.request"
    body.write_bytes(payload)
    out = workdir / f"{name}.json"
    start_at = time.time() + START_DELAY_S
    child = start_module(
        "bench.stream_load",
        [
            "--address", address, "--method", method, "--mode", mode, "--answers", answers,
            "--payload", str(body), "--concurrency", str(concurrency),
            "--start-at", repr(start_at), "--duration", str(duration),
            "--warmup", str(WARMUP_S), "--out", str(out),
        ],
    )  # fmt: skip
    (server_cpu,) = cpu_in_window(
        (server_pid,), start_at + WARMUP_S, start_at + WARMUP_S + duration
    )
    if child.wait(timeout=duration + 120) != 0:
        raise RuntimeError(f"bench.stream_load failed with {child.returncode} ({name})")
    data = json.loads(out.read_text())
    row = summarise(
        concurrency, data["latencies"], data["failed"], duration, server_cpu, data["cpu_s"]
    )
    row["errors"] = data["errors"]
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", required=True, help="HOST:PORT of the server or echo")
    parser.add_argument("--method", required=True, help="full gRPC method name")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--answers", choices=ANSWERS, default="infer", help="stream answers")
    parser.add_argument("--payload", type=Path, required=True, help="serialized request")
    parser.add_argument("--concurrency", type=int, required=True, help="requests in flight")
    parser.add_argument("--start-at", type=float, required=True, help="wall-clock start, epoch s")
    parser.add_argument("--duration", type=float, required=True, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds before that")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency {args.concurrency}: must be >= 1")
    result = asyncio.run(run_client(args))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
