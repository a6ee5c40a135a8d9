"""A worker that cancels each job right after taking it off the queue (race test helper).

Runs in its own process (`python -m tests.worker.cancel_on_dequeue_worker REDIS_URL MODELS`):
the pytest process has run parallel Numba kernels, so it must not fork work horses itself.
Prints `cancel_result=<the status JobQueue.cancel returned>` and exits after one job.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.connection import connect
from jobs.queue import JobQueue
from worker.runner import TrainingWorker
from worker.settings import WorkerSettings


class CancelOnDequeueWorker(TrainingWorker):
    """Cancels each job after taking it off the queue and before its horse starts it."""

    cancel_result = "not called"

    def execute_job(self, job: Job, queue: Queue) -> None:
        job_queue = JobQueue(self.connection, self.settings)
        self.cancel_result = job_queue.cancel(job.id).status.value
        super().execute_job(job, queue)


def main(redis_url: str, models_dir: str) -> None:
    settings = WorkerSettings.from_env({}, redis_url=redis_url, models_dir=Path(models_dir))
    worker = CancelOnDequeueWorker(
        ["training"], connection=connect(redis_url), serializer=JSONSerializer, settings=settings
    )
    worker.work(burst=True, max_jobs=1, logging_level="WARNING")
    print(f"cancel_result={worker.cancel_result}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
