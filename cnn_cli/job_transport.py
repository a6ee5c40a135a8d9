"""How `cnn train` reaches the job queue: straight to Redis, or through the gRPC server.

Both transports offer the same five operations (`JobTransport`) and hand back the same
`jobs.views.JobView`s, raise the same errors with the same words, so `cnn_cli.train` prints
one output whichever it used:

- `RedisJobs`: `jobs.queue.JobQueue` on CNN_REDIS_URL (or ``--redis-url``). Its views are cut
  down to what the gRPC API carries (`jobs.proto_codec.wire_view`): the CLI shows the job as
  every transport can report it, not more over one than over the other.
- `GrpcJobs`: `cnn_client.CnnClient` on CNN_ADDRESS (or ``--address``); the server's answers
  for an unknown job, an ended job or an invalid spec become the same `CliError` messages the
  Redis transport gives (the server words them with the same `jobs` errors).

A queue that cannot be reached is a `CliError` naming it and what to do; that line differs by
transport (it names Redis or the server).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from cnn_cli.errors import CliError
from jobs.errors import (
    InvalidRequestId,
    InvalidSpec,
    JobAlreadyEnded,
    JobNotFound,
    QueueFull,
    QueueUnavailable,
    RequestIdReused,
)
from jobs.proto_codec import wire_view
from jobs.status import JobStatus
from jobs.views import JobView

if TYPE_CHECKING:
    from cnn_client import CnnClient
    from jobs.queue import JobQueue

#: Advice after a Redis transport's "cannot reach Redis" message.
REDIS_HINT = (
    "start redis-server, pass --redis-url / set CNN_REDIS_URL, or go through the server with "
    "--address"
)


class WatchTimedOut(Exception):
    """A watch's time limit passed before the job ended (the job goes on)."""


class JobTransport(Protocol):
    """The queue operations `cnn train` needs; every method may raise `CliError`."""

    def submit(self, spec_json: str, *, request_id: str | None = None) -> str:
        """Validate a JSON training spec and enqueue it; returns the job id (with a
        `request_id` used before: the job that submit queued)."""
        ...

    def get(self, job_id: str) -> JobView: ...

    def list(self, *, status: JobStatus | None, limit: int) -> list[JobView]:
        """Jobs, newest first, at most `limit`, only `status` ones when given."""
        ...

    def cancel(self, job_id: str) -> JobStatus:
        """Ask a job to stop; returns its status afterwards."""
        ...

    def follow(self, job_id: str, *, timeout_s: float | None) -> Iterator[JobView]:
        """Every finished epoch, then each change, until the job ends.

        Raises:
            WatchTimedOut: `timeout_s` passed first.
        """
        ...

    def close(self) -> None: ...


def spec_problem(exc: InvalidSpec) -> str:
    """``invalid training spec: a: problem; b: problem``: one line, as the server words it."""
    return "invalid training spec: " + "; ".join(exc.errors) if exc.errors else str(exc)


# -- Redis -------------------------------------------------------------------------------------


class RedisJobs:
    """`JobTransport` over `jobs.queue.JobQueue` (the caller passes an open queue)."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except InvalidSpec as exc:
            raise CliError(spec_problem(exc)) from None
        except (
            JobNotFound,
            JobAlreadyEnded,
            QueueFull,
            InvalidRequestId,
            RequestIdReused,
        ) as exc:
            raise CliError(str(exc)) from None
        except QueueUnavailable as exc:
            raise CliError(f"{exc}: {REDIS_HINT}") from None

    def submit(self, spec_json: str, *, request_id: str | None = None) -> str:
        with self._errors():
            return self._queue.submit(spec_json, request_id=request_id)

    def get(self, job_id: str) -> JobView:
        with self._errors():
            return wire_view(self._queue.get(job_id))

    def list(self, *, status: JobStatus | None, limit: int) -> list[JobView]:
        with self._errors():
            return [wire_view(v) for v in self._queue.list(status=status, limit=limit)]

    def cancel(self, job_id: str) -> JobStatus:
        with self._errors():
            return self._queue.cancel(job_id).status

    def follow(self, job_id: str, *, timeout_s: float | None) -> Iterator[JobView]:
        """`jobs.follow.follow` over `JobQueue.get`, with a time limit checked at every poll;
        views that look the same once cut down to the wire's fields are shown once."""
        from jobs.follow import follow

        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def get() -> JobView:
            if deadline is not None and time.monotonic() > deadline:
                raise WatchTimedOut(f"job {job_id} not finished after {timeout_s:g} s")
            return self._queue.get(job_id)

        last = None
        with self._errors():
            for view in follow(get):
                shown = wire_view(view, with_epochs=False)  # as a Watch stream sends it
                if shown != last:
                    last = shown
                    yield shown

    def close(self) -> None:
        self._queue.close()

    def __enter__(self) -> RedisJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- gRPC --------------------------------------------------------------------------------------

#: gRPC codes whose message is the `jobs` error's own (see `server.training_codec`).
_DOMAIN_CODES = frozenset(
    {"NOT_FOUND", "FAILED_PRECONDITION", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
)


class GrpcJobs:
    """`JobTransport` over the server's `cnn.v1.Training` API (the caller passes a client)."""

    def __init__(self, client: CnnClient) -> None:
        self._client = client

    @contextmanager
    def _errors(self, *, watch_timeout_s: float | None = None) -> Iterator[None]:
        from cnn_client import CnnClientError

        try:
            yield
        except CnnClientError as exc:
            if exc.code.name in _DOMAIN_CODES:
                raise CliError(str(exc)) from None
            if exc.code.name == "DEADLINE_EXCEEDED" and watch_timeout_s is not None:
                raise WatchTimedOut(str(exc)) from None
            raise  # `cnn` prints it with its status code: it says which server, what to do

    def submit(self, spec_json: str, *, request_id: str | None = None) -> str:
        with self._errors():
            return self._client.submit(spec_json, request_id=request_id)

    def get(self, job_id: str) -> JobView:
        with self._errors():
            return self._client.get_job(job_id)

    def list(self, *, status: JobStatus | None, limit: int) -> list[JobView]:
        with self._errors():
            return self._client.list_jobs(status=status, limit=limit)

    def cancel(self, job_id: str) -> JobStatus:
        with self._errors():
            return self._client.cancel(job_id)

    def follow(self, job_id: str, *, timeout_s: float | None) -> Iterator[JobView]:
        with self._errors(watch_timeout_s=timeout_s):
            yield from self._client.watch(job_id, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GrpcJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
