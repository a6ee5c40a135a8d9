"""`python -m server` / `cnn serve`: run the gRPC server until SIGTERM or SIGINT.

Settings come from `CNN_*` environment variables (see `server.settings`). The bound address
is logged as "listening on HOST:PORT" and, with `--port-file`, written to a file (useful with
`CNN_GRPC_ADDRESS=127.0.0.1:0`).

With CNN_SERVER_PROCESSES other than 1 this process is a supervisor (`server.supervisor`) that
runs that many serving processes, `python -m server --child I ...`, on one port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings, SettingsError, settings_table

if TYPE_CHECKING:
    from server.app import Server


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (+ exc, + child and pid in a
    supervised serving process)."""

    def __init__(self, child: int | None = None) -> None:
        super().__init__()
        self._origin = {} if child is None else {"child": child, "pid": os.getpid()}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            **self._origin,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(level: str, fmt: str, child: int | None = None) -> None:
    """Log lines to stderr; those of a supervised serving process name its index and pid."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(child))
    else:
        origin = "" if child is None else f"[child {child} pid {os.getpid()}] "
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {origin}%(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _write_number(path: Path, number: int) -> None:
    """Write `number` and a newline to `path` atomically (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{number}\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m server", description="cnn-service gRPC classification server"
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    parser.add_argument(
        "--settings-table", action="store_true", help="print the settings table and exit"
    )
    # A serving process of the supervisor (server.supervisor): its index, the file it writes
    # once SERVING, the supervisor's pid.
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.settings_table:
        print(settings_table(Settings))
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, args.child)
    if args.child is not None:
        from server.supervisor import follow_parent

        if args.ready_file is None or args.parent_pid is None:
            parser.error("--child needs --ready-file and --parent-pid")
        if not follow_parent(args.parent_pid):
            logging.getLogger("server").error("supervisor %d is gone: exiting", args.parent_pid)
            return 1
        return asyncio.run(_serve(settings, None, ready_file=args.ready_file))
    count = settings.process_count
    if count > 1:
        from server.supervisor import supervise

        return supervise(settings, count, args.port_file)
    return asyncio.run(_serve(settings, args.port_file))


async def _report_serving(server: Server, ready_file: Path) -> None:
    """Tell the supervisor that this process serves: write `ready_file` once health is SERVING."""
    await server.serving.wait()
    _write_number(ready_file, os.getpid())


async def _serve(
    settings: Settings, port_file: Path | None, *, ready_file: Path | None = None
) -> int:
    """Serve on this event loop until SIGTERM or SIGINT, then drain; returns the exit code.

    `ready_file`: a supervised serving process (port shared with SO_REUSEPORT), reporting
    SERVING through that file.
    """
    from server.app import create_server

    log = logging.getLogger("server")
    try:
        server, port = await create_server(settings, shared_port=ready_file is not None)
    except (RuntimeError, OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.info("received %s", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await server.start()
    host = settings.grpc_address.rpartition(":")[0]
    log.info("settings %s", json.dumps(server.settings.describe()))
    log.info("listening on %s:%d (tls=%s)", host, port, settings.tls_enabled)
    if port_file:
        _write_number(port_file, port)
    reporter = None
    if ready_file is not None:
        reporter = asyncio.create_task(_report_serving(server, ready_file), name="report-serving")
    await stop.wait()
    if reporter is not None:
        reporter.cancel()
    started = time.monotonic()
    await server.drain_and_stop()
    log.info("shutdown complete in %.2f s", time.monotonic() - started)
    return 0
