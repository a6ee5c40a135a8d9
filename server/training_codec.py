"""`cnn.v1.Training` requests in, `jobs` views out: validation, encoding and the error map.

The only module of the server that knows both the Training wire messages and the `jobs`
package. Request fields are checked here (naming the field and its limit) before anything
reaches Redis; job views are encoded by `jobs.proto_codec`, the one codec of `cnn.v1.Job` that
the client decodes with too; `jobs` errors become the server's domain errors (and so their gRPC
status) in `queue_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc

from jobs import proto_codec
from jobs.errors import (
    InvalidRequestId,
    InvalidSpec,
    JobAlreadyEnded,
    JobNotFound,
    QueueFull,
    QueueUnavailable,
    RequestIdReused,
)
from jobs.status import JobStatus
from jobs.views import JobView
from proto.cnn.v1 import training_pb2 as pb
from server.errors import (
    FailedPrecondition,
    InvalidInput,
    LimitExceeded,
    ServerError,
    Unavailable,
)

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
MAX_SPEC_BYTES = 1024 * 1024
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class UnknownJob(ServerError, LookupError):
    """Unknown job id (never submitted, expired, or Redis lost it)."""

    code = grpc.StatusCode.NOT_FOUND


class JobEnded(ServerError):
    """Cancelling a job that already finished, failed or was cancelled."""

    code = grpc.StatusCode.FAILED_PRECONDITION


# -- requests ----------------------------------------------------------------------------------


def job_id(value: str) -> str:
    """The `job_id` field of a request, checked.

    Raises:
        InvalidInput: empty, or not 1-128 characters of [A-Za-z0-9_.:-].
    """
    if not value:
        raise InvalidInput("job_id is required (the id Training.Submit returned)")
    if not JOB_ID_PATTERN.match(value):
        raise InvalidInput(
            f"job_id {value[:40]!r} is malformed: expected 1-128 characters from "
            "[A-Za-z0-9_.:-], as returned by Training.Submit"
        )
    return value


def spec_json(value: str) -> str:
    """The `spec_json` of a SubmitRequest, checked for presence and size; `JobQueue.submit`
    parses and validates it (an invalid spec names the field, and nothing is enqueued).

    Raises:
        InvalidInput: empty, or larger than `MAX_SPEC_BYTES`.
    """
    if not value.strip():
        raise InvalidInput("spec_json is empty; send the training spec as a JSON object")
    size = len(value.encode("utf-8"))
    if size > MAX_SPEC_BYTES:
        raise InvalidInput(f"spec_json is {size} bytes; the limit is {MAX_SPEC_BYTES} bytes")
    return value


def request_id(value: str) -> str | None:
    """The optional `request_id` of a SubmitRequest (None when empty); `JobQueue.submission`
    checks its form (`jobs.request_ids.check_request_id`, INVALID_ARGUMENT naming it)."""
    return value or None


def submitter(peer_identities: Sequence[bytes] | None) -> str:
    """Whose request ids a Submit's are: the caller's authenticated identity (the names of its
    mTLS client certificate, from ``context.peer_identities()``), or "" when the channel does
    not authenticate callers. The peer address is not used: behind a balancer every caller
    has the balancer's, and a client's retry may reach the server from another address."""
    if not peer_identities:
        return ""
    return "\n".join(sorted(name.decode(errors="replace") for name in peer_identities))


def list_query(request: pb.ListJobsRequest) -> tuple[JobStatus | None, int]:
    """(status filter or None, limit) of a ListJobsRequest; limit 0 means the default.

    Raises:
        InvalidInput: a status that is not a JobStatus value.
    """
    if request.status not in pb.JobStatus.values():
        raise InvalidInput(f"status {request.status} is not a JobStatus value")
    wanted = proto_codec.decode_status(request.status) if request.status else None
    return wanted, min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)


# -- responses ---------------------------------------------------------------------------------


def job_message(view: JobView, *, with_epochs: bool = True) -> pb.Job:
    """A job view as `cnn.v1.Job` (Watch streams leave the finished epochs out)."""
    return proto_codec.encode_job(view, with_epochs=with_epochs)


def cancel_response(view: JobView) -> pb.CancelResponse:
    """The job's status after a cancel request."""
    return pb.CancelResponse(status=proto_codec.encode_status(view.status))


# -- errors ------------------------------------------------------------------------------------


def spec_message(exc: InvalidSpec) -> str:
    """``invalid training spec: a: problem; b: problem`` on one line."""
    return "invalid training spec: " + "; ".join(exc.errors) if exc.errors else str(exc)


@contextmanager
def queue_errors() -> Iterator[None]:
    """Turn `jobs` errors into the server's domain errors (each with its gRPC status).

    A Redis outage is UNAVAILABLE, naming Redis: training calls fail while it lasts,
    classification does not depend on it.
    """
    try:
        yield
    except InvalidSpec as exc:
        raise InvalidInput(spec_message(exc)) from None
    except InvalidRequestId as exc:
        raise InvalidInput(str(exc)) from None
    except RequestIdReused as exc:
        raise FailedPrecondition(str(exc)) from None
    except JobNotFound as exc:
        raise UnknownJob(str(exc)) from None
    except JobAlreadyEnded as exc:
        raise JobEnded(str(exc)) from None
    except QueueFull as exc:
        raise LimitExceeded(str(exc)) from None
    except QueueUnavailable as exc:
        raise Unavailable(
            f"{exc} (training calls fail until it is back; classification is unaffected)"
        ) from None
