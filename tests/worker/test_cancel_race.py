"""A job cancelled while a worker takes it off the queue is cancelled, not run."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.support.redis_server import RedisServer
from worker import client
from worker.cancellation import cancel_requested
from worker.runner import TrainingWorker
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture()
def keep_signal_handlers() -> Iterator[None]:
    """`Worker.work` installs SIGINT/SIGTERM handlers in this process: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class CancelOnDequeueWorker(TrainingWorker):
    """Cancels each job after taking it off the queue and before its horse starts it."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.cancel_result = client.cancel(job.id, connection=self.connection)
        super().execute_job(job, queue)


def _enqueue(connection: Any) -> Job:
    # Not a valid spec: had the job run, it would have FAILED (and recorded an attempt).
    queue = Queue("training", connection=connection, serializer=JSONSerializer)
    return queue.enqueue("worker.jobs.train_job", {"name": "x"}, meta={"kind": "train"})


def test_job_cancelled_as_a_worker_dequeues_it_is_canceled_not_run(
    redis_server: RedisServer, redis_url: str, tmp_path: Path, keep_signal_handlers: None
) -> None:
    connection = redis_server.client()
    job = _enqueue(connection)
    settings = WorkerSettings(redis_url=redis_url, models_dir=tmp_path / "models")
    worker = CancelOnDequeueWorker(
        ["training"], connection=connection, serializer=JSONSerializer, settings=settings
    )
    worker.work(burst=True, max_jobs=1, logging_level="WARNING")

    assert worker.cancel_result == "canceled"
    info = client.status(job.id, connection=connection)
    assert info.status == "canceled"
    assert info.attempts == 0 and info.error is None  # train_job never ran
    assert info.stage == "canceled"
    assert client.list_jobs(connection=connection)[0].status == "canceled"
    assert connection.zcard("rq:wip:training") == 0  # not left in the started registry
    with pytest.raises(client.CannotCancel):
        client.cancel(job.id, connection=connection)


def test_a_second_cancel_keeps_the_mark_and_cancelling_an_ended_job_leaves_none(
    redis_server: RedisServer, redis_url: str
) -> None:
    connection = redis_server.client()
    job = _enqueue(connection)
    assert client.cancel(job.id, connection=connection) == "canceled"
    with pytest.raises(client.CannotCancel):
        client.cancel(job.id, connection=connection)
    assert cancel_requested(connection, job.id)  # a worker may hold the job right now

    ended = _enqueue(connection)
    ended.set_status(JobStatus.FINISHED)
    with pytest.raises(client.CannotCancel, match="finished"):
        client.cancel(ended.id, connection=connection)
    assert not cancel_requested(connection, ended.id)  # a re-queued copy must still run
