"""Start the project's own processes (demo, tests) and always stop them.

Every process gets its own session (process group) so that children it forks (RQ work
horses) are stopped with it, and its output goes to a log file that a failing test prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ProcessError(RuntimeError):
    """A managed process died or did not become ready in time."""


class ManagedProcess:
    """A subprocess with a log file, readiness waiting and guaranteed clean-up."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ProcessError(f"{self.args[0]} was never started")
        return self._proc.pid

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait until the log matches `pattern`; raise with the log tail if it dies or times out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if self.poll() is not None:
                raise ProcessError(
                    f"{' '.join(self.args)} exited with {self.poll()} before logging "
                    f"{pattern!r}:\n{self.log_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"{' '.join(self.args)} did not log {pattern!r} within {timeout:.0f} s:\n"
                    f"{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the whole process group (the process and its forked children)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL whatever is left. Safe to call twice."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self._proc.wait(timeout=timeout)
        # Children that outlived their parent (e.g. a work horse) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        return self._proc.returncode


def python_module(module: str, *args: str) -> list[str]:
    """Command line that runs `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
