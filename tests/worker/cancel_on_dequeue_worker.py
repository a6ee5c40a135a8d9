"""A worker that cancels each job right after taking it off the queue (race test helper).

Runs in its own process (`python -m tests.worker.cancel_on_dequeue_worker REDIS_URL MODELS`):
the pytest process has run parallel Numba kernels, so it must not fork work horses itself.
Prints `cancel_result=<what client.cancel returned>` and exits after one job.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.connection import connect
from worker import client
from worker.runner import TrainingWorker
from worker.settings import WorkerSettings


class CancelOnDequeueWorker(TrainingWorker):
    """Cancels each job after taking it off the queue and before its horse starts it."""

    cancel_result = "not called"

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.cancel_result = client.cancel(job.id, connection=self.connection)
        super().execute_job(job, queue)


def main(redis_url: str, models_dir: str) -> None:
    settings = WorkerSettings(redis_url=redis_url, models_dir=Path(models_dir))
    worker = CancelOnDequeueWorker(
        ["training"], connection=connect(redis_url), serializer=JSONSerializer, settings=settings
    )
    worker.work(burst=True, max_jobs=1, logging_level="WARNING")
    print(f"cancel_result={worker.cancel_result}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
