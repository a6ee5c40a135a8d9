"""The floor of the serving benchmark: bare gRPC servers that send each request back.

    python -m bench.echo --port-file PATH [--stack aio|threads] [--workers N] [--port P]

Serves `/bench.Echo/Echo` on 127.0.0.1 (a free port, or `--port`, written to PATH once
listening) until killed (`--stack aio` also `/bench.Echo/EchoStream`, a bidirectional stream
answering each message with itself); gRPC binds with SO_REUSEPORT, so several `--stack aio`
echoes can share one port (`bench.serving_processes`). `--stack aio` is the server's own stack
(`grpc.aio`, handlers on one event loop): the floor the targets use. `--stack threads` is the
classic `grpc.server` with a thread pool, shown for comparison (faster at c=1 on this kind of
machine, slower under load).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

from bench.payload import ECHO_SERVICE

STACKS = ("aio", "threads")


def command(port_file: Path, stack: str, port: int = 0) -> list[str]:
    """The `python -m bench.echo` arguments that start an echo server on `stack` (`port` 0:
    a free one)."""
    return ["--port-file", str(port_file), "--stack", stack, "--port", str(port)]


def serve_threads(port_file: Path, workers: int) -> None:
    """A `grpc.server` echo with a pool of `workers` threads; blocks until killed."""
    import grpc

    def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    server.wait_for_termination()


async def serve_aio(port_file: Path, port: int = 0) -> None:
    """A `grpc.aio` echo, handlers on this event loop; runs until killed."""
    import grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def echo_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.echo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port")
    parser.add_argument("--stack", choices=STACKS, default="aio")
    parser.add_argument("--workers", type=int, default=16, help="threads of --stack threads")
    parser.add_argument("--port", type=int, default=0, help="port of --stack aio (0: any free)")
    args = parser.parse_args(argv)
    if args.stack == "threads":
        serve_threads(args.port_file, args.workers)
    else:
        asyncio.run(serve_aio(args.port_file, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
