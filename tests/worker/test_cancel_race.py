"""A job cancelled while a worker takes it off the queue is cancelled, not run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from jobs.cancellation import cancel_requested
from jobs.errors import JobAlreadyEnded
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from jobs.status import JobStatus as Status
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _enqueue(connection: Any) -> Job:
    # Not a valid spec: had the job run, it would have FAILED (and recorded an attempt).
    queue = Queue("training", connection=connection, serializer=JSONSerializer)
    return queue.enqueue("worker.jobs.train_job", {"name": "x"}, meta={"kind": "train"})


def _queue(connection: Any, redis_url: str) -> JobQueue:
    return JobQueue(connection, QueueSettings.from_env({}, redis_url=redis_url))


def test_job_cancelled_as_a_worker_dequeues_it_is_canceled_not_run(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    connection = redis_server.client()
    job = _enqueue(connection)
    # A fresh process: this one ran Numba kernels, so it must not fork work horses.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.worker.cancel_on_dequeue_worker",
            redis_url,
            str(tmp_path / "models"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    assert "cancel_result=cancelled" in run.stdout, run.stdout + run.stderr
    queue = _queue(connection, redis_url)
    view = queue.get(job.id)
    assert view.status is Status.CANCELLED
    assert view.attempts == 0 and view.error is None  # train_job never ran
    assert view.stage == "cancelled"
    assert connection.zcard("rq:wip:training") == 0  # not left in the started registry
    with pytest.raises(JobAlreadyEnded):
        queue.cancel(job.id)


def test_a_second_cancel_keeps_the_mark_and_cancelling_an_ended_job_leaves_none(
    redis_server: RedisServer, redis_url: str
) -> None:
    connection = redis_server.client()
    job = _enqueue(connection)
    queue = _queue(connection, redis_url)
    assert queue.cancel(job.id).status is Status.CANCELLED
    with pytest.raises(JobAlreadyEnded):
        queue.cancel(job.id)
    assert cancel_requested(connection, job.id)  # a worker may hold the job right now

    ended = _enqueue(connection)
    ended.set_status(JobStatus.FINISHED)
    with pytest.raises(JobAlreadyEnded, match="finished"):
        queue.cancel(ended.id)
    assert not cancel_requested(connection, ended.id)  # a re-queued copy must still run
