"""One status vocabulary for training jobs, whatever transport or tool shows them.

RQ has nine status words (``started``, ``canceled``, ``stopped``, ...); callers see five
(`JobStatus`). This module is the only place where RQ's words appear: `RqStatus` names them for
`jobs.rq_layout` (which writes and reads them) and `from_rq` translates.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Lifecycle of a training job, as every transport and the CLI print it."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses a job never leaves.
TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED}
)


class RqStatus(StrEnum):
    """The status words RQ 2.12 stores in a job hash's ``status`` field."""

    CREATED = "created"
    QUEUED = "queued"
    DEFERRED = "deferred"
    SCHEDULED = "scheduled"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    CANCELED = "canceled"


_FROM_RQ: dict[RqStatus, JobStatus] = {
    # Waiting, for whatever reason (not yet pushed, a dependency, a retry delay).
    RqStatus.CREATED: JobStatus.QUEUED,
    RqStatus.QUEUED: JobStatus.QUEUED,
    RqStatus.DEFERRED: JobStatus.QUEUED,
    RqStatus.SCHEDULED: JobStatus.QUEUED,
    RqStatus.STARTED: JobStatus.RUNNING,
    RqStatus.FINISHED: JobStatus.FINISHED,
    RqStatus.FAILED: JobStatus.FAILED,
    # Stopped while running or cancelled while waiting: both on request.
    RqStatus.STOPPED: JobStatus.CANCELLED,
    RqStatus.CANCELED: JobStatus.CANCELLED,
}


def from_rq(raw: str | bytes) -> JobStatus:
    """The `JobStatus` of an RQ status word (as stored in Redis: str or bytes).

    Raises:
        ValueError: `raw` is not one of RQ's status words (the message lists them).
    """
    word = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return _FROM_RQ[RqStatus(word)]
    except ValueError:
        known = ", ".join(s.value for s in RqStatus)
        raise ValueError(f"status: unknown RQ job status {word!r} (known: {known})") from None
