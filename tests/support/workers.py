"""Real `python -m worker` processes for tests, and waiting for a job to end.

:func:`start_worker` returns once the worker listens on its queues (it may compile every Numba
kernel first, hence COLD_START_LIMIT_S); :func:`launch_worker` and :func:`wait_listening` split
that for a test that starts other processes meanwhile. :func:`wait_until_ended` polls a job's
view until it is terminal. The caller stops the process (``ManagedProcess.stop``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jobs.queue import JobQueue
from jobs.views import JobView
from tests.support.limits import COLD_START_LIMIT_S
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, python_module

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What RQ logs once a worker takes jobs.
LISTENING = r"\*\*\* Listening on"


def launch_worker(
    env: Mapping[str, str], log_path: Path, name: str | None = None
) -> ManagedProcess:
    """Start ``python -m worker`` (``--name name`` if given) in the repository, output to
    ``log_path``; returns at once."""
    args = ("--name", name) if name else ()
    return ManagedProcess(
        python_module("worker", *args), log_path=log_path, env=env, cwd=REPO_ROOT
    ).start()


def wait_listening(worker: ManagedProcess) -> ManagedProcess:
    """``worker`` once it listens; stops it and fails with its log if it dies or never does."""
    try:
        worker.wait_for_log(LISTENING, timeout=COLD_START_LIMIT_S)
    except BaseException:
        worker.stop()
        raise
    return worker


def start_worker(env: Mapping[str, str], log_path: Path, name: str | None = None) -> ManagedProcess:
    """:func:`launch_worker` then :func:`wait_listening`."""
    return wait_listening(launch_worker(env, log_path, name))


def wait_until_ended(queue: JobQueue, job_id: str, timeout: float) -> JobView:
    """The job's view once it has ended (finished, failed or cancelled); fails the test after
    ``timeout`` s."""
    ended: JobView = wait_for(
        lambda: (view := queue.get(job_id)).terminal and view,
        timeout,
        interval=0.2,
        what=f"job {job_id} to end",
    )
    return ended
