"""A full queue is one line from `cnn train submit`, whichever transport reached it."""

from __future__ import annotations

import json

import pytest

from cnn_cli.errors import CliError
from cnn_cli.job_transport import RedisJobs
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from tests.worker.helpers import tiny_spec


def test_a_full_queue_is_a_one_line_cli_error(redis_url: str) -> None:
    settings = QueueSettings.from_env({}, redis_url=redis_url, max_queued_jobs=1)
    with RedisJobs(JobQueue.connect(settings)) as jobs:
        jobs.submit(json.dumps(tiny_spec("first")))
        with pytest.raises(CliError) as raised:
            jobs.submit(json.dumps(tiny_spec("second")))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("queue 'training' holds 1 jobs waiting for a worker")
    assert "CNN_MAX_QUEUED_JOBS=1" in message
