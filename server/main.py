"""`python -m server` / `cnn serve`: run the gRPC server until SIGTERM or SIGINT.

Settings come from `CNN_*` environment variables (see `server.settings`). The bound address
is logged as "listening on HOST:PORT" and, with `--port-file`, written to a file (useful with
`CNN_GRPC_ADDRESS=127.0.0.1:0`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
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
        print(settings_table())
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("server")

    from server.app import create_server

    try:
        server, port = create_server(settings)
    except (RuntimeError, OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    host = settings.grpc_address.rpartition(":")[0]
    log.info("settings %s", json.dumps(server.settings.describe()))
    log.info("listening on %s:%d (tls=%s)", host, port, settings.tls_enabled)
    if args.port_file:
        _write_port_file(args.port_file, port)
    while not stop.wait(1.0):
        pass
    started = time.monotonic()
    server.drain_and_stop()
    log.info("shutdown complete in %.2f s", time.monotonic() - started)
    return 0
