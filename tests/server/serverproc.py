"""Start `python -m server` as a real subprocess for tests and wait until it serves.

Never imports `proto.inference` (it would clash with tritonclient's stubs in this process).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.limits import COLD_START_LIMIT_S, EVENT_LIMIT_S
from tests.support.processes import ManagedProcess, python_module

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A running server: its process, bound port and model repository."""

    process: ManagedProcess
    port: int
    models_dir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def health(self, service: str = "", timeout: float = EVENT_LIMIT_S) -> int:
        with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            ).status

    def stop(self) -> int | None:
        return self.process.stop()


def start_server(
    workdir: Path,
    models_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    wait_serving: bool = True,
    timeout: float = COLD_START_LIMIT_S,
) -> ServerProcess:
    """Start a server on 127.0.0.1:0 serving `models_dir`; caller must `stop()` it.

    The first scan loads and warms every model, which compiles the kernels when the Numba
    cache is cold: hence a cold-start limit (it guards hangs only).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {
        "CNN_MODELS_DIR": str(models_dir),
        "CNN_GRPC_ADDRESS": "127.0.0.1:0",
        "CNN_POLL_INTERVAL_S": "0.2",
        "CNN_SHUTDOWN_GRACE_S": "5",
        "CNN_SERVER_PROCESSES": "1",  # one process unless a test asks for the supervisor
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    process = ManagedProcess(
        python_module("server"),
        log_path=workdir / f"server-{time.monotonic_ns()}.log",
        env=full_env,
        cwd=REPO_ROOT,
    ).start()
    try:
        match = process.wait_for_log(r"listening on 127\.0\.0\.1:(\d+)", timeout=timeout)
        server = ServerProcess(process, int(match.group(1)), models_dir)
        if wait_serving:
            process.wait_for_log(r"repository .* scanned", timeout=timeout)
        return server
    except BaseException:
        process.stop()
        raise
