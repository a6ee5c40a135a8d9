"""The whole stack as local processes: redis-server, RQ workers and the gRPC server.

Used by `cnn demo` and by the integration tests when no external stack is configured, so the
two exercise the same start-up path a user runs by hand.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cnn_cli.processes import ManagedProcess, ProcessError, free_port, python_module
from cnn_cli.redis_server import RedisServer


def wait_until_serving(
    address: str, timeout: float = 60.0, process: ManagedProcess | None = None
) -> None:
    """Block until the server's grpc.health.v1 overall status is SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if process is not None and process.poll() is not None:
                raise ProcessError(f"the server exited early:\n{process.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                tail = process.log_text()[-4000:] if process is not None else ""
                raise ProcessError(
                    f"the server at {address} was not SERVING after {timeout:.0f} s\n{tail}"
                )
            time.sleep(0.1)


class LocalStack:
    """redis-server (unless `redis_url` is given), `workers` RQ workers and one server.

    Everything binds 127.0.0.1; logs go to `workdir/logs/`, models to `workdir/models/`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 1,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.models_dir = self.workdir / "models"
        self.data_dir = self.workdir / "data"
        self.logs_dir = self.workdir / "logs"
        self._initial_workers = workers
        self._redis: RedisServer | None = None
        self._redis_url = redis_url
        self._extra_env = extra_env or {}
        self.grpc_address = f"127.0.0.1:{free_port()}"
        self.workers: list[ManagedProcess] = []
        self.server: ManagedProcess | None = None
        self._server_starts = 0

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            raise ProcessError("the stack is not started")
        return self._redis_url

    def env(self) -> dict[str, str]:
        """Environment shared by every process of the stack (and by clients of it)."""
        # Unset NUMBA_CACHE_DIR means the per-machine compile cache (core/kernels/compile_cache.py),
        # which every demo reuses; a per-work-directory cache made each fresh demo compile anew.
        cache = {name: value for name, value in os.environ.items() if name == "NUMBA_CACHE_DIR"}
        return {
            "CNN_REDIS_URL": self.redis_url,
            "CNN_MODELS_DIR": str(self.models_dir),
            "CNN_DATA_DIR": str(self.data_dir),
            "CNN_GRPC_ADDRESS": self.grpc_address,
            **cache,
            # one serving process (no supervisor): a light stack on a laptop or in CI
            "CNN_SERVER_PROCESSES": "1",
            **self._extra_env,
        }

    def start(self) -> LocalStack:
        for folder in (self.models_dir, self.data_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if self._redis_url is None:
            self._redis = RedisServer(self.workdir / "redis").start()
            self._redis_url = self._redis.url
        try:
            for _ in range(self._initial_workers):
                self.add_worker()
            self.start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self) -> ManagedProcess:
        index = len(self.workers)
        worker = ManagedProcess(
            python_module("worker"),
            log_path=self.logs_dir / f"worker-{index}.log",
            env=self.env(),
        ).start()
        self.workers.append(worker)
        return worker

    def start_server(self, timeout: float = 60.0) -> ManagedProcess:
        self._server_starts += 1
        self.server = ManagedProcess(
            python_module("server"),
            log_path=self.logs_dir / f"server-{self._server_starts}.log",
            env=self.env(),
        ).start()
        wait_until_serving(self.grpc_address, timeout, self.server)
        return self.server

    def restart_server(self, timeout: float = 60.0) -> ManagedProcess:
        if self.server is not None:
            self.server.stop()
        return self.start_server(timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for worker in self.workers:
            worker.stop()
        if self._redis is not None:
            self._redis.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
