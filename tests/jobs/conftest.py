"""Fixtures for the `jobs` tests: a `JobQueue` over the session's real Redis, real workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from tests.worker.conftest import (  # noqa: F401  (fixtures shared with the worker tests)
    models_dir,
    start_worker,
    warm_numba_cache,
    worker_env,
)


@pytest.fixture()
def queue_settings(redis_url: str) -> QueueSettings:
    return QueueSettings.from_env({}, redis_url=redis_url, job_retries=2, result_ttl=3600)


@pytest.fixture()
def queue(queue_settings: QueueSettings) -> Iterator[JobQueue]:
    with JobQueue.connect(queue_settings) as job_queue:
        yield job_queue
