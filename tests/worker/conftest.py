"""Fixtures for the worker tests: real `python -m worker` processes against a real Redis.

Timing settings are shrunk so fault tests finish quickly: heartbeat every 1 s, a job is
abandoned 3 s after its worker's last heartbeat, idle workers wake every 5 s to clean up.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.kernels import compile_cache
from jobs.queue import JobQueue
from tests.support.limits import COLD_START_LIMIT_S
from tests.support.processes import ManagedProcess, python_module
from tests.support.workers import REPO_ROOT, launch_worker, wait_listening
from worker.settings import WorkerSettings

FAST_TIMINGS = {
    "CNN_JOB_MONITORING_INTERVAL": "1",
    "CNN_HEARTBEAT_GRACE": "3",
    "CNN_MAINTENANCE_INTERVAL": "2",
    "CNN_WORKER_TTL": "20",
    "CNN_PROGRESS_INTERVAL": "0.2",
    "CNN_JOB_RETRIES": "2",
    "CNN_LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def warm_numba_cache() -> str:
    """Compile the kernels once for the session (the workers then start with CNN_WARMUP=off).

    Returns the cache root (the per-machine one unless NUMBA_CACHE_DIR is set).
    """
    cache = str(compile_cache.machine_root())
    done = subprocess.run(
        python_module("worker.warmup"),
        cwd=REPO_ROOT,
        env={**os.environ, "NUMBA_CACHE_DIR": cache},
        capture_output=True,
        text=True,
        timeout=COLD_START_LIMIT_S,  # a cold compile on a fresh clone
    )
    if done.returncode != 0:
        pytest.fail(f"python -m worker.warmup failed:\n{done.stderr[-4000:]}")
    return cache


@pytest.fixture()
def worker_env(tmp_path: Path, redis_url: str, warm_numba_cache: str) -> dict[str, str]:
    models = tmp_path / "models"
    data = tmp_path / "data"
    models.mkdir()
    data.mkdir()
    return {
        "CNN_REDIS_URL": redis_url,
        "CNN_MODELS_DIR": str(models),
        "CNN_DATA_DIR": str(data),
        "CNN_QUEUES": "training",
        "NUMBA_CACHE_DIR": warm_numba_cache,
        "CNN_WARMUP": "off",
        "PYTHONPATH": str(REPO_ROOT),
        **FAST_TIMINGS,
    }


@pytest.fixture()
def models_dir(worker_env: dict[str, str]) -> Path:
    return Path(worker_env["CNN_MODELS_DIR"])


@pytest.fixture()
def start_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ManagedProcess]]:
    """Start `python -m worker` processes; every one is stopped at teardown."""
    started: list[ManagedProcess] = []

    def start(name: str = "w1", **env: str) -> ManagedProcess:
        log_path = tmp_path / f"worker-{name}.log"
        worker = launch_worker({**worker_env, **env}, log_path, f"{name}-{tmp_path.name}"[:60])
        started.append(worker)
        # With CNN_WARMUP=block the worker compiles the kernels before it listens.
        return wait_listening(worker)

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture()
def job_queue(worker_env: dict[str, str]) -> Iterator[JobQueue]:
    """The test's queue, as the server and the CLI reach it (`jobs.queue.JobQueue`)."""
    with JobQueue.connect(WorkerSettings.from_env(worker_env)) as queue:
        yield queue
