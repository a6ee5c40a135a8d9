"""Contract test: the job layout `jobs` writes with redis-py is RQ 2.12's own.

A job written by `JobQueue.submit` is read by `rq.job.Job.fetch` with everything RQ needs, is
listed by `rq.Queue`, and is run by a real worker; the statuses RQ itself writes read back as
the right `JobStatus`; a job cancelled by `jobs` is cancelled for RQ.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RqJobStatus
from rq.registry import CanceledJobRegistry
from rq.serializers import JSONSerializer

from jobs.queue import JobQueue
from jobs.spec import TRAIN_FUNCTION, parse_spec
from jobs.status import JobStatus
from tests.support.processes import ManagedProcess
from tests.support.workers import wait_until_ended
from tests.worker.helpers import tiny_spec


def _fetch(queue: JobQueue, job_id: str) -> Job:
    return Job.fetch(job_id, connection=queue._redis, serializer=JSONSerializer)


def test_rq_reads_a_submitted_job(queue: JobQueue) -> None:
    spec = tiny_spec("layout", timeout_s=123)
    job_id = queue.submit(spec)
    job = _fetch(queue, job_id)
    assert job.func_name == TRAIN_FUNCTION
    assert job.args == [parse_spec(spec).payload()]
    assert job.kwargs == {}
    assert job.timeout == 123
    assert job.retries_left == 2
    assert job.retry_intervals == [0]
    assert job.origin == "training"
    assert job.result_ttl == job.failure_ttl == 3600
    assert job.meta["model"] == "layout"
    assert job.get_status(refresh=False) == RqJobStatus.QUEUED
    assert job.enqueued_at is not None and job.created_at is not None
    assert job.description == "train layout"
    rq_queue = Queue("training", connection=queue._redis, serializer=JSONSerializer)
    assert rq_queue.job_ids == [job_id]
    assert rq_queue in Queue.all(connection=queue._redis, serializer=JSONSerializer)


def test_rq_and_jobs_agree_on_the_times(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec())
    enqueued = _fetch(queue, job_id).enqueued_at
    assert enqueued is not None
    assert queue.get(job_id).enqueued_at == pytest.approx(enqueued.timestamp(), abs=1e-6)


@pytest.mark.parametrize(
    ("rq_status", "expected"),
    [
        (RqJobStatus.QUEUED, JobStatus.QUEUED),
        (RqJobStatus.DEFERRED, JobStatus.QUEUED),
        (RqJobStatus.SCHEDULED, JobStatus.QUEUED),
        (RqJobStatus.STARTED, JobStatus.RUNNING),
        (RqJobStatus.FINISHED, JobStatus.FINISHED),
        (RqJobStatus.FAILED, JobStatus.FAILED),
        (RqJobStatus.STOPPED, JobStatus.CANCELLED),
        (RqJobStatus.CANCELED, JobStatus.CANCELLED),
    ],
)
def test_statuses_rq_writes_read_back(
    queue: JobQueue, rq_status: RqJobStatus, expected: JobStatus
) -> None:
    job_id = queue.submit(tiny_spec())
    _fetch(queue, job_id).set_status(rq_status)
    assert queue.get(job_id).status is expected


def test_a_job_rq_enqueued_reads_back(queue: JobQueue) -> None:
    rq_queue = Queue("training", connection=queue._redis, serializer=JSONSerializer)
    job = rq_queue.enqueue(TRAIN_FUNCTION, tiny_spec("by-rq"), meta={"model": "by-rq"})
    view = queue.get(job.id)
    assert (view.status, view.model, view.queue) == (JobStatus.QUEUED, "by-rq", "training")
    assert view.spec == tiny_spec("by-rq")


def test_a_job_cancelled_by_jobs_is_cancelled_for_rq(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec())
    assert queue.cancel(job_id).status is JobStatus.CANCELLED
    job = _fetch(queue, job_id)
    assert job.get_status(refresh=False) == RqJobStatus.CANCELED
    rq_queue = Queue("training", connection=queue._redis, serializer=JSONSerializer)
    assert rq_queue.job_ids == []
    assert job_id in CanceledJobRegistry(queue=rq_queue).get_job_ids(cleanup=False)


@pytest.mark.integration
def test_a_real_worker_runs_a_submitted_job(
    queue: JobQueue, start_worker: Callable[..., ManagedProcess]
) -> None:
    start_worker()
    job_id = queue.submit(tiny_spec("run-by-rq"))
    view = wait_until_ended(queue, job_id, timeout=240)
    assert view.status is JobStatus.FINISHED, view.error
    assert view.model_version == 1
    assert view.metrics and all(isinstance(v, float) for v in view.metrics.values())
    assert view.epochs and view.epochs[-1].epoch == 1
    assert view.attempts == 1
    assert view.started_at is not None and view.ended_at is not None
