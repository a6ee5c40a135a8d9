"""The errors of the queue operations (`jobs.queue`); every one is a `JobsError`.

Each transport maps them once: the server to gRPC status codes (NOT_FOUND,
FAILED_PRECONDITION, UNAVAILABLE, INVALID_ARGUMENT, RESOURCE_EXHAUSTED; see
`server.training_codec.queue_errors`), the CLI to exit
statuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import SpecError

if TYPE_CHECKING:
    from jobs.status import JobStatus


class JobsError(Exception):
    """Base of every error raised by `jobs`."""


class JobNotFound(JobsError, LookupError):
    """No job with this id (never submitted, expired, or Redis lost it)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found (unknown id, expired, or Redis lost it)")


class JobAlreadyEnded(JobsError):
    """Cancelling a job that already finished, failed or was cancelled; ``status`` is its end."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id} already ended with status {status.value}")


class QueueUnavailable(JobsError, ConnectionError):
    """Redis, which holds the job queue, cannot be reached; the message names its (redacted) URL."""


class QueueFull(JobsError):
    """The queue already holds its limit of jobs waiting for a worker; nothing was queued."""

    def __init__(self, queue: str, queued: int, limit: int) -> None:
        self.queue, self.queued, self.limit = queue, queued, limit
        super().__init__(
            f"queue {queue!r} holds {queued:,} jobs waiting for a worker, limit "
            f"CNN_MAX_QUEUED_JOBS={limit:,}; submit again once some have started"
        )


class InvalidRequestId(JobsError, ValueError):
    """A submit's ``request_id`` is malformed (the message names the field and its form)."""


class RequestIdReused(JobsError):
    """A submit's ``request_id`` was used before with another spec; nothing was queued."""

    def __init__(self, request_id: str, job_id: str, when: str) -> None:
        self.request_id, self.job_id = request_id, job_id
        super().__init__(
            f"request_id {request_id!r} was used at {when} to queue job {job_id} with a "
            "different spec: a retry must send the same spec, a new submit a new request_id"
        )


#: An invalid spec names at most this many problems, each clipped to `MAX_PROBLEM_CHARS`
#: characters: a hostile spec (thousands of unknown keys, megabyte strings) must not make a
#: message bigger than what a gRPC status carries.
MAX_PROBLEMS = 10
MAX_PROBLEM_CHARS = 300


def _clip(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 3] + "..."


class InvalidSpec(JobsError, SpecError):
    """A training spec failed validation. ``errors`` holds one ``"path: message"`` per problem
    (at most `MAX_PROBLEMS`, then how many more there were)."""

    def __init__(self, errors: list[str]) -> None:
        shown = [_clip(e) for e in errors[:MAX_PROBLEMS]]
        if len(errors) > MAX_PROBLEMS:
            shown.append(f"... and {len(errors) - MAX_PROBLEMS} more problems")
        self.errors = shown
        if len(self.errors) == 1:
            text = f"invalid training spec: {self.errors[0]}"
        else:
            text = "invalid training spec:\n" + "\n".join(f"  {e}" for e in self.errors)
        super().__init__(text)
