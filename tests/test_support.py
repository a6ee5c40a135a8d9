"""The test harness itself: a real redis-server and process groups that are always stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, ProcessError
from tests.support.redis_server import RedisServer


def test_redis_server_answers_on_its_own_loopback_port(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.ping()
    assert client.connection_pool.connection_kwargs["host"] == "127.0.0.1"
    assert redis_server.port != 6379


def test_redis_restart_keeps_the_port_and_drops_the_data(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        server.client().set("k", "v")
        port = server.port
        server.restart()
        assert server.port == port
        assert server.client().get("k") is None
    finally:
        server.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()


def test_stop_kills_forked_children_too(tmp_path: Path) -> None:
    script = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    print('child', os.getpid(), flush=True)\n"
        "time.sleep(600)\n"  # both stay until they are killed
    )
    proc = ManagedProcess([sys.executable, "-c", script], log_path=tmp_path / "p.log").start()
    child_pid = int(proc.wait_for_log(r"child (\d+)").group(1))
    proc.stop(timeout=2)
    # SIGKILL is delivered asynchronously: wait for the child to go.
    wait_for(lambda: not _is_running(child_pid), EVENT_LIMIT_S, what="the forked child to die")


def _is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for a reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state


def test_wait_for_log_reports_an_early_exit_with_the_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log_path=tmp_path / "p.log"
    ).start()
    with pytest.raises(ProcessError, match="boom"):
        proc.wait_for_log("never printed", timeout=10)
    proc.stop()
