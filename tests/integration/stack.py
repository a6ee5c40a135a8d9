"""The stack under test and the one way tests drive it, wherever it runs.

`stack_from_env()` picks the target by configuration:

- ``CNN_IT_GRPC_ADDRESS`` and ``CNN_IT_REDIS_URL`` set: an already running stack (the compose
  `tests` service sets them to ``server:50051`` and ``redis://redis:6379/0``). Restarting the
  server and scaling the workers are requests to a *stack controller* on the host, passed as
  files through ``CNN_IT_CONTROL_DIR`` (docker/compose-suite.sh answers them with
  ``docker compose restart server`` / ``up --scale worker=N``); without it those tests skip.
- otherwise: local processes (`cnn_cli.stack.LocalStack`: redis-server, ``python -m worker``,
  ``python -m server`` on free 127.0.0.1 ports), controlled directly.

Tests only see the `Stack` interface: addresses, `restart_server()`, `scale_workers(n)`, and for
the replicas stage (docker/compose.replicas.yml) `kill_replica(name)` / `start_replica(name)`.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from cnn_cli.stack import LocalStack
from tests.support.limits import COLD_START_LIMIT_S


class ControlUnavailable(RuntimeError):
    """This stack cannot be restarted or scaled from here (no stack controller)."""


class Stack:
    """A running redis + workers + server, as the suite sees it."""

    kind = "abstract"
    redis_url: str
    grpc_address: str
    #: The model repository as a readable directory, when the tests can see it (else None).
    models_dir: Path | None = None

    def restart_server(self) -> None:
        """Stop the gRPC server and start it again on the same address (returns once asked;
        the caller waits for SERVING)."""
        raise ControlUnavailable(f"{self.kind} stack: cannot restart the server")

    def scale_workers(self, count: int) -> None:
        """Run exactly `count` training workers (returns once started; the caller waits for them
        to register in Redis)."""
        raise ControlUnavailable(f"{self.kind} stack: cannot scale the workers")

    def kill_replica(self, name: str) -> None:
        """SIGKILL one server replica (no draining: a crash); returns once it is dead."""
        raise ControlUnavailable(f"{self.kind} stack: cannot kill a replica")

    def stop_replica(self, name: str) -> None:
        """Stop one server replica with SIGTERM (it drains first); returns once it exited."""
        raise ControlUnavailable(f"{self.kind} stack: cannot stop a replica")

    def start_replica(self, name: str) -> None:
        """Start a killed or stopped replica again (returns once started; the caller waits for
        SERVING)."""
        raise ControlUnavailable(f"{self.kind} stack: cannot start a replica")

    def describe(self) -> str:
        return f"{self.kind} stack: redis {self.redis_url}, gRPC {self.grpc_address}"

    def close(self) -> None:
        """Stop what this object started (nothing for an external stack)."""


class LocalProcesses(Stack):
    """The stack as local processes, started and stopped by the test session."""

    kind = "local"

    def __init__(self, workdir: Path, workers: int = 1) -> None:
        self._stack = LocalStack(workdir, workers=0)
        self._stack.start()
        try:
            self.scale_workers(workers)
        except BaseException:
            self._stack.stop()
            raise
        self.redis_url = self._stack.redis_url
        self.grpc_address = self._stack.grpc_address
        self.models_dir = self._stack.models_dir
        self.logs_dir = self._stack.logs_dir

    def restart_server(self) -> None:
        # The restarted server loads and warms every model before it serves.
        self._stack.restart_server(timeout=COLD_START_LIMIT_S)

    def scale_workers(self, count: int) -> None:
        while len(self._stack.workers) > count:
            self._stack.workers.pop().stop()
        while len(self._stack.workers) < count:
            # A worker warms the compile cache before it is ready: a cold compile.
            self._stack.add_worker().wait_for_log(r"cnn worker ready", timeout=COLD_START_LIMIT_S)

    def logs(self) -> str:
        """Every process's log (printed when a test fails)."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            parts.append(f"===== {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        self._stack.stop()


class ControlChannel:
    """Requests to the host's stack controller, as files in a shared directory.

    The controller announces itself with a file named ``agent``; a request is written as
    ``<id>.request`` (one line, e.g. ``restart server``, ``scale worker 2``,
    ``kill replica server-a``, ``stop replica server-a``, ``start replica server-a``) and
    answered with ``<id>.response``: the command's exit status on the first line, then its
    output.
    """

    def __init__(self, directory: Path, timeout: float = COLD_START_LIMIT_S) -> None:
        self.directory = directory
        self.timeout = timeout

    def available(self) -> bool:
        return (self.directory / "agent").is_file()

    def request(self, command: str) -> str:
        if not self.available():
            raise ControlUnavailable(
                f"no stack controller answers in {self.directory} (run the suite with "
                "docker/compose-suite.sh to restart or scale services)"
            )
        request_id = uuid.uuid4().hex
        tmp = self.directory / f".{request_id}.tmp"
        tmp.write_text(command + "\n")
        tmp.rename(self.directory / f"{request_id}.request")
        response = self.directory / f"{request_id}.response"
        deadline = time.monotonic() + self.timeout
        while not response.is_file():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stack controller did not answer {command!r} in time")
            time.sleep(0.2)
        status, _, output = response.read_text(errors="replace").partition("\n")
        if status.strip() != "0":
            raise RuntimeError(f"stack controller: {command!r} failed ({status}):\n{output}")
        return output


class ExternalStack(Stack):
    """A stack someone else runs (docker compose); the suite only connects to it."""

    kind = "compose"

    def __init__(
        self,
        redis_url: str,
        grpc_address: str,
        models_dir: Path | None,
        control: ControlChannel | None,
    ) -> None:
        self.redis_url = redis_url
        self.grpc_address = grpc_address
        self.models_dir = models_dir
        self._control = control

    def _request(self, command: str) -> None:
        if self._control is None:
            raise ControlUnavailable("CNN_IT_CONTROL_DIR is not set: no stack controller")
        self._control.request(command)

    def restart_server(self) -> None:
        self._request("restart server")

    def scale_workers(self, count: int) -> None:
        self._request(f"scale worker {int(count)}")

    def kill_replica(self, name: str) -> None:
        self._request(f"kill replica {name}")

    def stop_replica(self, name: str) -> None:
        self._request(f"stop replica {name}")

    def start_replica(self, name: str) -> None:
        self._request(f"start replica {name}")


def stack_from_env(workdir: Path, env: dict[str, str] | None = None) -> Stack:
    """The stack the configuration names (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    grpc_address = env.get("CNN_IT_GRPC_ADDRESS", "").strip()
    redis_url = env.get("CNN_IT_REDIS_URL", "").strip()
    if not grpc_address and not redis_url:
        return LocalProcesses(workdir)
    if not grpc_address or not redis_url:
        raise ValueError(
            "CNN_IT_GRPC_ADDRESS and CNN_IT_REDIS_URL name an external stack together; "
            f"got CNN_IT_GRPC_ADDRESS={grpc_address!r}, CNN_IT_REDIS_URL={redis_url!r}"
        )
    models = env.get("CNN_IT_MODELS_DIR", "").strip()
    control = env.get("CNN_IT_CONTROL_DIR", "").strip()
    return ExternalStack(
        redis_url,
        grpc_address,
        Path(models) if models else None,
        ControlChannel(Path(control)) if control else None,
    )
