"""Which queued or running jobs use a stored thing (a data set version, a model version).

Deleting something a waiting or running job will read makes that job fail later (or its re-run
after a worker died), so the deletes of the Datasets and Models services ask here first. A job
"uses" what its submitted spec names; each kind of reference has its own predicate next to the
code that pins it (`jobs.datasets.trains_on`, `jobs.warm_start.starts_from`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from jobs.status import JobStatus

if TYPE_CHECKING:
    from jobs.queue import JobQueue

#: Jobs read to find the ones using something (the queue holds at most CNN_MAX_QUEUED_JOBS
#: waiting; running ones are bounded by the workers; the rest are finished records).
MAX_JOBS_SCANNED = 100_000
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)

#: Whether a job's spec (None: unreadable) uses the thing asked about.
SpecUses = Callable[[Mapping[str, Any] | None], bool]


def active_jobs_using(queue: JobQueue, uses: SpecUses) -> list[str]:
    """Ids of the queued or running jobs whose spec `uses` the thing, newest first.

    Raises:
        QueueUnavailable: Redis cannot tell.
    """
    return [
        view.id
        for view in queue.list(limit=MAX_JOBS_SCANNED)
        if view.status in ACTIVE and uses(view.spec)
    ]
