"""Issue #13: the worker runs only the training job function; any other job fails unrun."""

from __future__ import annotations

from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from jobs.queue import JobQueue
from jobs.spec import TRAIN_FUNCTION
from jobs.status import JobStatus
from tests.support.workers import wait_until_ended
from tests.worker.helpers import tiny_spec

pytestmark = pytest.mark.integration


def test_a_job_naming_another_function_fails_without_running(
    start_worker, job_queue: JobQueue, tmp_path: Path
) -> None:
    worker = start_worker()
    target = tmp_path / "created-by-an-attacker"
    rq_queue = Queue("training", connection=job_queue._redis, serializer=JSONSerializer)
    # Straight into Redis through rq's own enqueue, as anyone with Redis access could.
    job = rq_queue.enqueue("os.makedirs", str(target))

    view = wait_until_ended(job_queue, job.id, 60)
    assert view.status is JobStatus.FAILED
    assert view.error == f"refused: this worker runs only {TRAIN_FUNCTION}, not 'os.makedirs'"
    assert not target.exists()
    assert view.attempts == 0

    # The worker carries on with real work.
    after = wait_until_ended(job_queue, job_queue.submit(tiny_spec("digits-guard")), 120)
    assert after.status is JobStatus.FINISHED
    assert worker.poll() is None
