"""Several serving processes on one port under the supervisor (CNN_SERVER_PROCESSES=2):
real `python -m server` processes, real kills and signals.

Which process answered a call is told by the `cnn-server-pid` trailing metadata that every
unary answer of a supervised serving process carries; fresh channels (new connections) are
spread over the processes by the kernel (SO_REUSEPORT).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from server.supervisor import SupervisorError, child_environment, describe_exit, reserve_port
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import REPO_ROOT
from tests.support.limits import COLD_START_LIMIT_S, COLD_START_TEST_TIMEOUT_S, EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, python_module

X = (np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8)) % 17
CHILD_SERVING = re.compile(r"child (\d+) \(pid (\d+)\) serving")
# gRPC retries of UNAVAILABLE (a connection to a killed process): what a careful client sets
RETRYING = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "cnn.v1.Classifier"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

pytestmark = pytest.mark.timeout(COLD_START_TEST_TIMEOUT_S)


@dataclass
class Supervised:
    """A running supervisor: its process, the shared port, its log."""

    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serving_pids(self) -> dict[int, int]:
        """Child index -> pid of the latest process that reported SERVING in that slot."""
        return {
            int(m.group(1)): int(m.group(2))
            for m in CHILD_SERVING.finditer(self.process.log_text())
        }

    def wait_exit(self) -> int:
        wait_for(lambda: self.process.poll() is not None, EVENT_LIMIT_S, what="supervisor to exit")
        return int(self.process.poll())  # type: ignore[arg-type]


def start_supervisor(workdir: Path, models_dir: Path, env: dict[str, str]) -> Supervised:
    """`python -m server` with CNN_SERVER_PROCESSES=2 on 127.0.0.1:0; returns once all serve."""
    process = ManagedProcess(
        python_module("server", "--port-file", str(workdir / "port")),
        log_path=workdir / "supervisor.log",
        env={
            "CNN_MODELS_DIR": str(models_dir),
            "CNN_GRPC_ADDRESS": "127.0.0.1:0",
            "CNN_SERVER_PROCESSES": "2",
            "CNN_POLL_INTERVAL_S": "0.2",
            "CNN_SHUTDOWN_GRACE_S": "5",
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        cwd=REPO_ROOT,
    ).start()
    try:
        process.wait_for_log(r"listening on 127\.0\.0\.1:\d+ .*2 processes", COLD_START_LIMIT_S)
        return Supervised(process, int((workdir / "port").read_text()))
    except BaseException:
        process.stop()
        raise


@pytest.fixture()
def supervised(
    tmp_path: Path, digits_artifact: TrainedArtifact
) -> Iterator[tuple[Supervised, Path]]:
    """Two serving processes of `digits` v1 with metrics on: (supervisor, model repository)."""
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    running = start_supervisor(tmp_path, root, {"CNN_METRICS_PORT": "0"})
    try:
        yield running, root
    finally:
        running.process.stop()


def _pid_of(call: grpc.Call) -> int:
    return int(dict(call.trailing_metadata() or ())["cnn-server-pid"])


def get_model_fresh(address: str) -> tuple[int, int]:
    """GetModel("digits") over a new connection: (answering pid, default version)."""
    with grpc.insecure_channel(address) as channel:
        reply, call = pb_grpc.ClassifierStub(channel).GetModel.with_call(
            pb.GetModelRequest(model="digits"), timeout=EVENT_LIMIT_S
        )
    return _pid_of(call), int(reply.version)


def _scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=EVENT_LIMIT_S) as response:
        return str(response.read().decode())


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


# -- pure parts ---------------------------------------------------------------------------------


def test_a_reserved_port_is_held_but_takes_no_connection() -> None:
    holder, address = reserve_port("127.0.0.1:0")
    with holder:
        port = int(address.rpartition(":")[2])
        assert address == f"127.0.0.1:{port}" and port > 0
        with pytest.raises(OSError), socket.socket() as other:
            other.bind(("127.0.0.1", port))  # no SO_REUSEPORT: the port is taken
        with pytest.raises(ConnectionRefusedError), socket.socket() as client:
            client.connect(("127.0.0.1", port))  # bound, not listening: nobody answers


def test_an_address_taken_or_unknown_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            SupervisorError, match=rf"cannot bind CNN_GRPC_ADDRESS=127\.0\.0\.1:{port}"
        ):
            reserve_port(f"127.0.0.1:{port}")
    with pytest.raises(
        SupervisorError, match=r"cannot resolve CNN_GRPC_ADDRESS=no-such-host\.invalid"
    ):
        reserve_port("no-such-host.invalid:0")


def test_exit_codes_are_described_by_code_or_signal() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_serving_processes_get_the_address_the_metrics_files_and_a_share_of_the_cores(
    tmp_path: Path,
) -> None:
    cores = len(os.sched_getaffinity(0))
    environ = {"CNN_METRICS_PORT": "9100", "PROMETHEUS_MULTIPROC_DIR": "/elsewhere", "A": "b"}
    env = child_environment(environ, "127.0.0.1:5000", tmp_path, 2)
    assert env["CNN_GRPC_ADDRESS"] == "127.0.0.1:5000" and env["A"] == "b"
    assert env["CNN_METRICS_PORT"] == ""  # empty = unset: only the supervisor serves /metrics
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert env["NUMBA_NUM_THREADS"] == str(max(1, cores // 2))
    quiet = child_environment({**environ, "NUMBA_NUM_THREADS": "3"}, "h:1", None, 4 * cores)
    assert "PROMETHEUS_MULTIPROC_DIR" not in quiet  # metrics off: nothing written to files
    assert quiet["NUMBA_NUM_THREADS"] == "3"  # the operator's choice stands
    assert child_environment({}, "h:1", None, 4 * cores)["NUMBA_NUM_THREADS"] == "1"


def test_the_supervisor_imports_no_numba() -> None:
    """It forks children (by exec): a process that ran a parallel Numba kernel must not fork."""
    code = (
        "import sys, server.main, server.supervisor\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'core')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    loaded = out.stdout.strip()
    assert "numba" not in loaded and "core.kernels" not in loaded, loaded


# -- real processes -------------------------------------------------------------------------------


def test_two_processes_share_the_port_and_metrics_add_up(
    supervised: tuple[Supervised, Path],
) -> None:
    running, _ = supervised
    children = set(running.serving_pids().values())
    assert len(children) == 2
    seen: set[int] = set()
    calls = 0

    def both_answered() -> bool:
        nonlocal calls
        seen.add(get_model_fresh(running.address)[0])
        calls += 1
        return seen == children

    wait_for(both_answered, EVENT_LIMIT_S, interval=0.0, what="both processes to answer")
    metrics_port = int(
        running.process.wait_for_log(
            r"metrics of all serving processes on http://\S+:(\d+)/"
        ).group(1)
    )
    text = _scrape(metrics_port)
    # counters of both processes summed: every GetModel made above, whoever answered it
    ok = 'cnn_grpc_requests_total{code="OK",method="/cnn.v1.Classifier/GetModel"}'
    assert _sample(text, ok) == calls
    assert _sample(text, 'cnn_model_default_version{model="digits"}') == 1
    assert _sample(text, "cnn_server_processes_serving ") == 2


def test_a_published_version_reaches_every_process(
    supervised: tuple[Supervised, Path], digits_artifact_v2: TrainedArtifact
) -> None:
    running, root = supervised
    children = set(running.serving_pids().values())
    assert publish_copy(root, "digits", digits_artifact_v2.path) == 2
    on_v2: set[int] = set()

    def every_process_serves_v2() -> bool:
        pid, version = get_model_fresh(running.address)
        if version == 2:
            on_v2.add(pid)
        return on_v2 == children

    wait_for(every_process_serves_v2, EVENT_LIMIT_S, interval=0.0, what="v2 in both processes")
    # and none goes back: a round of fresh connections to both sees only v2
    answers = [get_model_fresh(running.address) for _ in range(20)]
    assert {version for _, version in answers} == {2}


@dataclass
class Load:
    """Client threads calling Classify in a loop, each over its own retrying channel."""

    address: str
    threads: int = 4
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # pid per successful call

    def _run(self) -> None:
        options = [("grpc.enable_retries", 1), ("grpc.service_config", RETRYING)]
        request = pb.ClassifyRequest(
            model="digits",
            batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(X.shape), data=X.tobytes()),
        )
        with grpc.insecure_channel(self.address, options=options) as channel:
            stub = pb_grpc.ClassifierStub(channel)
            while not self.stop.is_set():
                try:
                    _, call = stub.Classify.with_call(request, timeout=EVENT_LIMIT_S)
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code()}: {exc.details()}")
                else:
                    self.answers.append(_pid_of(call))

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(EVENT_LIMIT_S)


def test_a_killed_process_is_restarted_and_retrying_clients_see_no_failure(
    supervised: tuple[Supervised, Path],
) -> None:
    running, _ = supervised
    before = running.serving_pids()
    with Load(running.address) as load:
        wait_for(lambda: len(load.answers) >= 20, EVENT_LIMIT_S, what="load to run")
        victim = load.answers[-1]  # a process the load is using
        index = next(i for i, pid in before.items() if pid == victim)
        os.kill(victim, signal.SIGKILL)
        running.process.wait_for_log(
            rf"child {index} \(pid {victim}\) killed by SIGKILL; restarting", EVENT_LIMIT_S
        )
        restarted = wait_for(
            lambda: running.serving_pids()[index] != victim and running.serving_pids()[index],
            COLD_START_LIMIT_S,
            what="the restarted process to serve",
        )
        # serving again: a fresh connection reaches the new process
        wait_for(
            lambda: get_model_fresh(running.address)[0] == restarted,
            EVENT_LIMIT_S,
            interval=0.0,
            what="the restarted process to answer",
        )
        done = len(load.answers)
        wait_for(lambda: len(load.answers) >= done + 20, EVENT_LIMIT_S, what="load to go on")
    assert load.failures == []
    assert victim in load.answers and len(load.answers) > 40
    assert running.process.poll() is None


def test_sigterm_drains_every_process_and_the_supervisor_exits_0(
    supervised: tuple[Supervised, Path],
) -> None:
    running, _ = supervised
    children = running.serving_pids()
    os.kill(running.process.pid, signal.SIGTERM)  # the supervisor alone: it tells the children
    assert running.wait_exit() == 0
    log = running.process.log_text()
    for index, pid in children.items():
        assert f"[child {index} pid {pid}] server: shutdown complete" in log
        assert f"child {index} (pid {pid}) stopped" in log
        assert not Path(f"/proc/{pid}").exists()  # reaped by the supervisor: no orphan


def test_a_process_that_cannot_start_ends_the_supervisor_with_a_clear_error(
    tmp_path: Path,
) -> None:
    """The TLS files are read by the serving processes only: each exits at start; the
    supervisor restarts each once, then gives up instead of spinning."""
    (tmp_path / "models").mkdir()
    process = ManagedProcess(
        python_module("server", "--port-file", str(tmp_path / "port")),
        log_path=tmp_path / "supervisor.log",
        env={
            "CNN_MODELS_DIR": str(tmp_path / "models"),
            "CNN_GRPC_ADDRESS": "127.0.0.1:0",
            "CNN_SERVER_PROCESSES": "2",
            "CNN_SERVER_CRASH_LIMIT": "2",
            "CNN_TLS_CERT": str(tmp_path / "missing-cert.pem"),
            "CNN_TLS_KEY": str(tmp_path / "missing-key.pem"),
        },
        cwd=REPO_ROOT,
    ).start()
    try:
        wait_for(lambda: process.poll() is not None, COLD_START_LIMIT_S, what="supervisor exit")
        log = process.log_text()
        assert process.poll() == 1, log
        assert "cannot start" in log and "missing-key.pem" in log
        assert re.search(r"exited with code 1; restarting it in 0\.5 s", log)
        assert re.search(
            r"child \d \(pid \d+\) exited with code 1: it exited 2 times in a row .*"
            r"\(CNN_SERVER_CRASH_LIMIT=2\); giving up",
            log,
        )
        assert len(re.findall(r"child \d \(pid \d+\) started", log)) <= 4
        assert not (tmp_path / "port").exists()
    finally:
        process.stop()


def test_processes_default_to_the_usable_cores() -> None:
    from server.settings import Settings

    assert Settings.from_env({}).process_count == len(os.sched_getaffinity(0))
    assert Settings.from_env({"CNN_SERVER_PROCESSES": "1"}).process_count == 1
    assert Settings.from_env({"CNN_SERVER_PROCESSES": "3"}).process_count == 3
