"""A real redis-server process on a free 127.0.0.1 port (for the demo and the tests)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from cnn_cli.processes import ManagedProcess, ProcessError, free_port

INSTALL_HINT = (
    "redis-server is not installed: run `make setup` (it runs apt-get install redis-server)"
)


class RedisServer:
    """redis-server with no persistence; restartable on the same port (fault tests)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ProcessError(INSTALL_HINT)
        self._binary = binary
        self._workdir = workdir
        self.port = free_port()
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                "--protected-mode",
                "yes",
            ],
            log_path=self._workdir / "redis.log",
        ).start()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if self._process is None:
                raise ProcessError("redis-server was stopped while starting")
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise ProcessError(f"redis-server did not start:\n{self._process.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port; all data is lost (no persistence)."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
