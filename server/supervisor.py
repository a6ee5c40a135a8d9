"""Several serving processes on one port: `python -m server` when CNN_SERVER_PROCESSES > 1.

The supervisor resolves the gRPC address once (port 0 becomes a free port) and holds the port
with a socket bound with SO_REUSEPORT but never listening, so the kernel routes no connection to
it while no other user can take the port. It then starts N children, each `python -m server
--child I`: a complete server (own event loop, models, repository watcher, health service)
that binds the same port with SO_REUSEPORT; the kernel spreads new connections over them.

- The port file is written, and "listening on HOST:PORT" logged, once every child's health
  turned SERVING (each child reports it through a file in the supervisor's run directory).
- A child that exits is restarted after a back-off (0.5 s, doubling up to 10 s). One that
  exits CNN_SERVER_CRASH_LIMIT times in a row without serving 30 s in between ends the
  supervisor: it stops the others and exits 1 instead of spinning.
- SIGTERM or SIGINT is passed to every child, which drains as a single server does
  (CNN_SHUTDOWN_DELAY_S, CNN_SHUTDOWN_GRACE_S); the supervisor exits 0 when all drained, 1 if
  one did not (it is killed after the grace period plus a margin).
- Prometheus (CNN_METRICS_PORT): children write their samples to files in a private directory
  (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR); the supervisor alone
  serves /metrics, summing counters and histograms over the children, dead ones included.
- A child dies with its supervisor (PR_SET_PDEATHSIG), so none outlives a killed supervisor.
- Each child's Numba kernels use cores / N threads (NUMBA_NUM_THREADS, unless set).

This module imports neither numba nor core kernels, and children are started by exec, never
forked from a process that ran a kernel (GNU OpenMP kills such a fork).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from server.settings import Settings

log = logging.getLogger("server.supervisor")

RESTART_FIRST_S = 0.5  # back-off before the first restart of a child, doubled per exit in a row
RESTART_MAX_S = 10.0
STABLE_S = 30.0  # serving this long clears a child's count of exits in a row
DRAIN_MARGIN_S = 30.0  # beyond delay + grace: stopping the watcher and batchers after the drain
TICK_S = 0.05  # how often children are looked at (their exit, their ready file)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class SupervisorError(RuntimeError):
    """The supervisor cannot start (the address cannot be reserved)."""


def reserve_port(address: str) -> tuple[socket.socket, str]:
    """Bind, without listening, a SO_REUSEPORT socket on `address` ("host:port", port 0 = any).

    Returns:
        The socket (keep it open: it holds the port) and "host:port" with the bound port.

    Raises:
        SupervisorError: the host does not resolve or the port is taken.
    """
    host, _, port = address.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, _, proto, _, sockaddr = socket.getaddrinfo(
            bare, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
    except OSError as exc:
        raise SupervisorError(f"cannot resolve CNN_GRPC_ADDRESS={address}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # like gRPC's own sockets: IPv4 too
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise SupervisorError(f"cannot bind CNN_GRPC_ADDRESS={address}: {exc}") from None
    return sock, f"{host}:{sock.getsockname()[1]}"


def follow_parent(parent_pid: int) -> bool:
    """In a child: have the kernel SIGTERM this process when its supervisor dies.

    Returns:
        False if the supervisor `parent_pid` is already gone (the child should exit).
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guarantee
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == parent_pid


def describe_exit(code: int) -> str:
    """'exited with code 1' or 'killed by SIGKILL' for a Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    """One slot of the supervisor: its current process (None while waiting for a restart)."""

    index: int
    ready_file: Path
    process: subprocess.Popen[bytes] | None = None
    serving_since: float | None = None
    exits_in_a_row: int = 0
    restart_at: float = 0.0

    @property
    def pid(self) -> int:
        return -1 if self.process is None else self.process.pid


class SupervisorMetrics:
    """The /metrics endpoint of all children (multiprocess files) plus the supervisor's own."""

    def __init__(self, directory: Path, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = directory
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
        self.restarts = Counter(
            "cnn_server_process_restarts",
            "Serving processes restarted by the supervisor after they exited.",
            registry=registry,
        )
        self.serving = Gauge(
            "cnn_server_processes_serving",
            "Serving processes whose health is SERVING.",
            registry=registry,
        )
        server, _thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(server.server_port)
        log.info("metrics of all serving processes on http://%s:%d/metrics", host, self.port)

    def process_dead(self, pid: int) -> None:
        """Drop the live-only gauges of an exited child (its counters keep counting)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, str(self.directory))


def child_environment(
    environ: Mapping[str, str], address: str, metrics_dir: Path | None, count: int
) -> dict[str, str]:
    """The environment of the serving processes: the supervisor's, with the resolved address,
    no metrics endpoint of their own (an empty variable means unset) but multiprocess files in
    `metrics_dir` when metrics are on, and the cores shared out between the `count` processes
    for Numba's parallel kernels (NUMBA_NUM_THREADS, unless set): two processes each running 2
    threads on 2 cores would stall in each other's barriers.
    """
    env = {**environ, "CNN_GRPC_ADDRESS": address, "CNN_METRICS_PORT": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if not env.get("NUMBA_NUM_THREADS"):
        env["NUMBA_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // count))
    return env


class Supervisor:
    """Runs `count` children serving `address` until SIGTERM/SIGINT or a crash loop."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        address: str,
        run_dir: Path,
        port_file: Path | None,
        metrics: SupervisorMetrics | None,
    ) -> None:
        self.settings = settings
        self.address = address
        self.children = [Child(i, run_dir / f"child-{i}.ready") for i in range(count)]
        self._port_file = port_file
        self._metrics = metrics
        self._env = child_environment(
            os.environ, address, None if metrics is None else metrics.directory, count
        )
        self._stop_signal: int | None = None
        self._wake = threading.Event()
        self._failure: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set flags here: the loop logs and acts (logging from a handler can deadlock).
        if self._stop_signal is None:
            self._stop_signal = signum
        self._wake.set()

    def run(self) -> int:
        """Start the children and tend them until told to stop; returns the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for child in self.children:
            self._start(child)
        announced = False
        while self._stop_signal is None and self._failure is None:
            now = time.monotonic()
            for child in self.children:
                self._tend(child, now)
            if self._metrics is not None:
                self._metrics.serving.set(sum(c.serving_since is not None for c in self.children))
            if not announced and all(c.serving_since is not None for c in self.children):
                announced = True
                self._announce()
            self._wake.wait(TICK_S)
        if self._failure is not None:
            log.error("%s", self._failure)
        else:
            log.info(
                "received %s: stopping %d serving processes",
                signal.Signals(self._stop_signal).name,  # type: ignore[arg-type]
                len(self.children),
            )
        drained = self._stop_all()
        return 0 if drained and self._failure is None else 1

    def _announce(self) -> None:
        port = int(self.address.rpartition(":")[2])
        log.info(
            "listening on %s (tls=%s, %d processes: pids %s)",
            self.address,
            self.settings.tls_enabled,
            len(self.children),
            ", ".join(str(c.pid) for c in self.children),
        )
        if self._port_file is not None:
            tmp = self._port_file.with_name(self._port_file.name + ".tmp")
            tmp.write_text(f"{port}\n")
            os.replace(tmp, self._port_file)

    def _start(self, child: Child) -> None:
        child.ready_file.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "server",
            "--child",
            str(child.index),
            "--ready-file",
            str(child.ready_file),
            "--parent-pid",
            str(os.getpid()),
        ]
        child.process = subprocess.Popen(command, env=self._env, stdin=subprocess.DEVNULL)
        child.serving_since = None
        log.info("child %d (pid %d) started", child.index, child.pid)

    def _tend(self, child: Child, now: float) -> None:
        """Start a child whose back-off ended, notice one serving, handle one that exited."""
        if child.process is None:
            if now >= child.restart_at:
                if self._metrics is not None:
                    self._metrics.restarts.inc()
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            if child.serving_since is None and child.ready_file.exists():
                child.serving_since = now
                log.info("child %d (pid %d) serving", child.index, child.pid)
            return
        pid = child.pid
        self._reaped(child)
        if child.serving_since is not None and now - child.serving_since >= STABLE_S:
            child.exits_in_a_row = 0
        child.exits_in_a_row += 1
        limit = self.settings.server_crash_limit
        if child.exits_in_a_row >= limit:
            self._failure = (
                f"child {child.index} (pid {pid}) {describe_exit(code)}: it exited "
                f"{child.exits_in_a_row} times in a row without serving {STABLE_S:.0f} s "
                f"(CNN_SERVER_CRASH_LIMIT={limit}); giving up"
            )
            return
        delay = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (child.exits_in_a_row - 1))
        child.restart_at = now + delay
        log.warning(
            "child %d (pid %d) %s; restarting it in %.1f s",
            child.index,
            pid,
            describe_exit(code),
            delay,
        )

    def _reaped(self, child: Child) -> None:
        if self._metrics is not None:
            self._metrics.process_dead(child.pid)
        child.process = None
        child.ready_file.unlink(missing_ok=True)

    def _stop_all(self) -> bool:
        """SIGTERM every child and wait for its drain; True if all exited cleanly."""
        live = [c for c in self.children if c.process is not None]
        for child in live:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        limit = self.settings.shutdown_delay_s + self.settings.shutdown_grace_s + DRAIN_MARGIN_S
        deadline = time.monotonic() + limit
        clean = True
        for child in live:
            process: subprocess.Popen[bytes] = child.process  # type: ignore[assignment]
            try:
                code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                log.error(
                    "child %d (pid %d) did not drain within %.0f s: killed",
                    child.index,
                    process.pid,
                    limit,
                )
                clean = False
            else:
                # A child still starting has nothing in flight: SIGTERM's default end is fine.
                if code == 0 or (child.serving_since is None and code == -signal.SIGTERM):
                    log.info("child %d (pid %d) stopped", child.index, process.pid)
                else:
                    log.error(
                        "child %d (pid %d) %s while draining",
                        child.index,
                        process.pid,
                        describe_exit(code),
                    )
                    clean = False
            self._reaped(child)
        return clean


def supervise(settings: Settings, count: int, port_file: Path | None) -> int:
    """Run `count` serving processes under a supervisor; returns the exit code.

    Exit codes: 0 all drained after SIGTERM/SIGINT; 1 the address cannot be bound, a child
    crash-looped or did not drain.
    """
    try:
        holder, address = reserve_port(settings.grpc_address)
    except SupervisorError as exc:
        log.error("cannot start: %s", exc)
        return 1
    run_dir = Path(tempfile.mkdtemp(prefix="cnn-server-"))
    try:
        metrics = None
        if settings.metrics_port is not None:
            directory = run_dir / "metrics"
            directory.mkdir()
            metrics = SupervisorMetrics(directory, settings.metrics_host, settings.metrics_port)
        log.info("supervisor (pid %d): %d serving processes on %s", os.getpid(), count, address)
        return Supervisor(settings, count, address, run_dir, port_file, metrics).run()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        holder.close()
        shutil.rmtree(run_dir, ignore_errors=True)
