"""`python -m server` / `cnn serve`: run the gRPC server until SIGTERM or SIGINT.

Settings come from `CNN_*` environment variables (see `server.settings`). The bound address
is logged as "listening on HOST:PORT" and, with `--port-file`, written to a file (useful with
`CNN_GRPC_ADDRESS=127.0.0.1:0`).
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
from typing import Any

from server.settings import Settings, SettingsError, settings_table


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
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
    args = parser.parse_args(argv)
    if args.settings_table:
        print(settings_table(Settings))
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    return asyncio.run(_serve(settings, args.port_file))


async def _serve(settings: Settings, port_file: Path | None) -> int:
    """Serve on this event loop until SIGTERM or SIGINT, then drain; returns the exit code."""
    from server.app import create_server

    log = logging.getLogger("server")
    try:
        server, port = await create_server(settings)
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
        _write_port_file(port_file, port)
    await stop.wait()
    started = time.monotonic()
    await server.drain_and_stop()
    log.info("shutdown complete in %.2f s", time.monotonic() - started)
    return 0
