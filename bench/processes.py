"""Child processes of the serving benchmark: started as modules of this checkout, each telling
its port through a file, and stopped at the end whatever happened."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

# The checkout: the working directory of every child, so `python -m server` and
# `python -m bench.echo` import this tree (bench/ is not installed with the wheel).
ROOT = Path(__file__).resolve().parent.parent


def start_module(
    module: str, args: Iterable[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m module args...` with this interpreter, from the checkout."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=None if env is None else dict(env)
    )


def wait_port_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> int:
    """The port `proc` wrote to `path` once it listens.

    Raises:
        RuntimeError: `proc` exited first, or `timeout` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before binding")
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for the port file")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server that cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """Terminate each process, killing it if it has not exited after `timeout` seconds."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
