"""Refusing to delete what a queued or running job will still read.

Shared by `Datasets.Delete` (a data set version a job trains on) and `Models.DeleteVersion` (a
model version a job fine-tunes from): both ask `jobs.in_use` and answer alike. Blocking (Redis
I/O): call it in the server's blocking threads.
"""

from __future__ import annotations

from jobs.errors import QueueUnavailable
from jobs.in_use import SpecUses, active_jobs_using
from jobs.queue import JobQueue
from server.errors import FailedPrecondition, Unavailable

#: Job ids a refusal lists at most.
JOBS_SHOWN = 5


def refuse_if_in_use(queue: JobQueue, thing: str, role: str, uses: SpecUses, advice: str) -> None:
    """Raise unless no queued or running job's spec `uses` `thing`.

    Args:
        thing: what is to be deleted, as the messages name it ("data set cats:2").
        role: how such a job's spec names it ("as their data set").
        advice: how else to get it deleted, appended to the refusal.

    Raises:
        FailedPrecondition: naming the jobs (the first `JOBS_SHOWN`) and how many there are.
        Unavailable: Redis cannot tell (so nothing may be deleted).
    """
    try:
        users = active_jobs_using(queue, uses)
    except QueueUnavailable as exc:
        raise Unavailable(
            f"cannot tell whether queued or running jobs use {thing} {role}, so nothing was "
            f"deleted: {exc}"
        ) from None
    if users:
        shown = ", ".join(users[:JOBS_SHOWN]) + (", ..." if len(users) > JOBS_SHOWN else "")
        raise FailedPrecondition(
            f"{thing} is in use by {len(users)} queued or running job(s) {role}: {shown}; "
            f"cancel them (`cnn train cancel JOB`){advice} or wait until they end"
        )
