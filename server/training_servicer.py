"""`cnn.v1.Training`: submit and follow training jobs for services that do not speak RQ.

Three small parts, as in the Classifier: `JobQueue` is the data plane (one shared Redis client
with short timeouts around `worker.client`, worker exceptions turned into `ServerError`s), the
`job_message` codec is the only place that knows the `cnn.v1.Job` layout, and
`TrainingServicer` translates.

`rq` is imported only by `worker/`; this module goes through `worker.client`, which validates
with `worker.spec` before it contacts Redis, so an invalid spec never enqueues anything.

Redis being down never affects classification: the Redis client (one connection pool for the
threads that run its blocking calls, connecting lazily) has short timeouts, and its failures
become UNAVAILABLE ("job queue (Redis at URL) unreachable"). Those responses carry
``grpc-retry-pushback-ms: -1`` so that clients with a gRPC retry policy do not retry what the
server already retried (the answer then comes in about a second, not five).

Watch sends one message per finished epoch: the worker appends each epoch end to the job's
epoch list (`JobInfo.epochs`), and the stream sends every epoch it has not sent yet, oldest
first, before the job's current state, however short the epochs are compared to the polling
interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import redis

from jobs.connection import connect
from jobs.spec import InvalidSpec, parse_spec
from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server.errors import (
    InvalidInput,
    LimitExceeded,
    ServerError,
    Unavailable,
    map_errors,
    map_stream_errors,
)
from server.settings import redact_url
from worker import client as jobs
from worker.settings import WorkerSettings

#: rq status string -> wire status. Deferred/scheduled jobs are waiting, like queued ones.
STATUS: dict[str, pb.JobStatus] = {
    "queued": pb.JOB_STATUS_QUEUED,
    "deferred": pb.JOB_STATUS_QUEUED,
    "scheduled": pb.JOB_STATUS_QUEUED,
    "started": pb.JOB_STATUS_RUNNING,
    "finished": pb.JOB_STATUS_FINISHED,
    "failed": pb.JOB_STATUS_FAILED,
    "stopped": pb.JOB_STATUS_CANCELLED,
    "canceled": pb.JOB_STATUS_CANCELLED,
}
FINAL = frozenset({pb.JOB_STATUS_FINISHED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED})

#: Core's progress phases -> the phases documented in training.proto.
PHASES = {"train": "training", "epoch_end": "evaluating"}

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
MAX_SPEC_BYTES = 1024 * 1024
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")

#: Trailing metadata telling gRPC clients not to retry this UNAVAILABLE (the server already did).
NO_CLIENT_RETRY = (("grpc-retry-pushback-ms", "-1"),)


class JobNotFound(ServerError, LookupError):
    """Unknown job id (never submitted, expired, or Redis lost it)."""

    code = grpc.StatusCode.NOT_FOUND


class JobAlreadyEnded(ServerError):
    """Cancelling a job that already finished, failed or was cancelled."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class QueueUnavailable(Unavailable):
    """Redis, which holds the job queue, cannot be reached."""


T = TypeVar("T")

#: Retries of a failed Redis command (after 0.2 s): rides out a blip, answers within seconds.
REDIS_RETRIES = 1


class JobQueue:
    """`worker.client` over one shared Redis client; raises only `ServerError`s.

    Args:
        redis_url: the job queue's Redis (no connection is made until the first call).
        timeout_s: connect timeout towards Redis (the socket timeout is twice that).
        settings: queue name, job timeout, retries and result TTL used when submitting.
    """

    def __init__(
        self, redis_url: str, *, timeout_s: float = 1.0, settings: WorkerSettings | None = None
    ) -> None:
        self.redis_url = redis_url
        self._redis = connect(
            redis_url,
            retries=REDIS_RETRIES,
            connect_timeout=timeout_s,
            socket_timeout=2 * timeout_s,
        )
        self._settings = settings if settings is not None else WorkerSettings.from_env()

    def close(self) -> None:
        """Close the pooled connections."""
        self._redis.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except InvalidSpec as exc:
            raise InvalidInput(_spec_message(exc)) from None
        except jobs.JobNotFound as exc:
            raise JobNotFound(str(exc)) from None
        except jobs.CannotCancel as exc:
            raise JobAlreadyEnded(str(exc)) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailable(
                f"job queue (Redis at {redact_url(self.redis_url)}) unreachable: {exc} "
                "(training calls fail until it is back; classification is unaffected)"
            ) from None

    def submit(self, spec_json: str) -> str:
        """Validate the JSON spec and enqueue it; returns the job id.

        Raises:
            InvalidInput: bad JSON or an invalid spec (naming the field); nothing is enqueued.
            QueueUnavailable: Redis unreachable.
        """
        if not spec_json.strip():
            raise InvalidInput("spec_json is empty; send the training spec as a JSON object")
        if len(spec_json) > MAX_SPEC_BYTES:
            raise InvalidInput(
                f"spec_json is {len(spec_json)} bytes; the limit is {MAX_SPEC_BYTES} bytes"
            )
        try:
            data = json.loads(spec_json)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"spec_json is not valid JSON: {exc}") from None
        with self._errors():
            spec = parse_spec(data)  # validated here, before any Redis traffic
            return jobs.submit(spec, settings=self._settings, connection=self._redis)

    def get(self, job_id: str) -> jobs.JobInfo:
        with self._errors():
            return jobs.status(job_id, settings=self._settings, connection=self._redis)

    def cancel(self, job_id: str) -> str:
        """Stop or cancel the job; returns the rq status afterwards."""
        with self._errors():
            return jobs.cancel(job_id, settings=self._settings, connection=self._redis)

    def list(self, limit: int) -> list[jobs.JobInfo]:
        with self._errors():
            return jobs.list_jobs(limit=limit, settings=self._settings, connection=self._redis)


def _spec_message(exc: InvalidSpec) -> str:
    # One line per problem would read badly in a status message: join them.
    return "invalid training spec: " + "; ".join(exc.errors) if exc.errors else str(exc)


# -- codec -------------------------------------------------------------------------------------


def _timestamp(value: str | None) -> float:
    if not value:
        return 0.0
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # rq stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _number(value: Any, kind: type[int] | type[float] = float) -> Any:
    return kind(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def progress_message(progress: dict[str, Any], stage: str | None) -> pb.Progress:
    """`job.meta["progress"]` (a `core.training.Progress` as a dict) as a `cnn.v1.Progress`."""
    phase = str(progress.get("phase") or "")
    message = pb.Progress(
        epoch=_number(progress.get("epoch"), int),
        epochs=_number(progress.get("epochs"), int),
        step=_number(progress.get("step"), int),
        total_steps=_number(progress.get("total_steps"), int),
        loss=_number(progress.get("loss")),
        train_accuracy=_number(progress.get("train_accuracy")),
        images_per_s=_number(progress.get("images_per_s")),
        eta_s=_number(progress.get("eta_s")),
        phase="publishing" if stage == "publishing" else PHASES.get(phase, phase),
    )
    if isinstance(progress.get("val_accuracy"), int | float):
        message.val_accuracy = float(progress["val_accuracy"])
    return message


def job_message(info: jobs.JobInfo) -> pb.Job:
    """A `worker.client.JobInfo` as a `cnn.v1.Job`."""
    result = info.result or {}
    message = pb.Job(
        job_id=info.id,
        status=STATUS.get(info.status, pb.JOB_STATUS_UNSPECIFIED),
        model_name=info.model or str(result.get("model") or ""),
        spec_json=_spec_json(info),
        error=info.error or "",
        model_version=_number(result.get("version"), int),
        enqueued_at=_timestamp(info.enqueued_at),
        started_at=_timestamp(info.started_at),
        ended_at=_timestamp(info.ended_at),
    )
    if info.progress:
        message.progress.CopyFrom(progress_message(info.progress, info.stage))
    metrics = result.get("metrics") or {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            message.metrics[str(key)] = float(value)
    return message


def _spec_json(info: jobs.JobInfo) -> str:
    return json.dumps(info.spec, sort_keys=True) if isinstance(info.spec, dict) else ""


def epoch_messages(info: jobs.JobInfo, after: int) -> tuple[list[pb.Job], int]:
    """One `cnn.v1.Job` per epoch snapshot of `info` with an epoch number above `after`.

    Each shows the job as it was at that epoch's end: running, with that epoch's progress
    (phase "evaluating"), no result yet.

    Returns:
        the messages, oldest first, and the highest epoch number now sent.
    """
    messages = []
    sent = after
    for snapshot in info.epochs:
        epoch = snapshot.get("epoch")
        if not isinstance(epoch, int) or epoch <= sent:
            continue
        sent = epoch
        then = dataclasses.replace(
            info,
            status="started",
            stage="training",
            progress={**snapshot, "phase": "epoch_end"},
            error=None,
            result=None,
            ended_at=None,
        )
        messages.append(job_message(then))
    return messages, sent


def _job_id(value: str) -> str:
    if not value:
        raise InvalidInput("job_id is required (the id Training.Submit returned)")
    if not JOB_ID_PATTERN.match(value):
        raise InvalidInput(
            f"job_id {value[:40]!r} is malformed: expected 1-128 characters from "
            "[A-Za-z0-9_.:-], as returned by Training.Submit"
        )
    return value


# -- servicer ----------------------------------------------------------------------------------


class TrainingServicer(pb_grpc.TrainingServicer):
    """Translate `cnn.v1.Training` messages to `JobQueue` calls and back.

    The server's handlers run on its event loop; every `JobQueue` call (blocking Redis I/O)
    runs in `blocking`, a thread pool, so a slow or unreachable Redis never stalls
    classification.

    Args:
        queue: the job queue.
        blocking: the executor for `JobQueue` calls.
        max_watches: concurrent Watch streams (a stream holds no thread between polls).
        watch_interval_s: how often a Watch polls the job.
        draining: true once the server shuts down; open Watch streams then end (UNAVAILABLE).
        watch_grace_s: how long a Watch rides out Redis being unreachable (or the job hash
            missing after a Redis restart) before it gives up.
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        blocking: Executor,
        max_watches: int = 64,
        watch_interval_s: float = 0.2,
        draining: Callable[[], bool] = lambda: False,
        watch_grace_s: float = 15.0,
    ) -> None:
        self._queue = queue
        self._blocking = blocking
        self._max_watches = max_watches
        self._watching = 0
        self._interval = watch_interval_s
        self._draining = draining
        self._grace = watch_grace_s

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._blocking, fn, *args)

    @map_errors
    async def Submit(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        return pb.SubmitResponse(job_id=await self._call(self._queue.submit, request.spec_json))

    @map_errors
    async def Get(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        return job_message(await self._call(self._queue.get, _job_id(request.job_id)))

    @map_errors
    async def Cancel(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        status = await self._call(self._queue.cancel, _job_id(request.job_id))
        return pb.CancelResponse(status=STATUS.get(status, pb.JOB_STATUS_UNSPECIFIED))

    @map_errors
    async def List(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        if request.status not in pb.JobStatus.values():
            raise InvalidInput(f"status {request.status} is not a JobStatus value")
        limit = min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        wanted = request.status
        # worker.client filters nothing: ask for everything when filtering by status.
        infos = await self._call(self._queue.list, MAX_LIST_LIMIT if wanted else limit)
        messages = [job_message(info) for info in infos]
        if wanted:
            messages = [m for m in messages if m.status == wanted]
        return pb.ListJobsResponse(jobs=messages[:limit])

    @map_stream_errors
    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Job]:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        job_id = _job_id(request.job_id)
        if self._watching >= self._max_watches:
            raise LimitExceeded(
                f"{self._max_watches} Watch streams are open, the server's limit "
                "(CNN_MAX_WATCHES): retry later or poll Training.Get"
            )
        self._watching += 1
        try:
            async for message in self._follow(job_id):
                yield message
        finally:
            self._watching -= 1

    async def _follow(self, job_id: str) -> AsyncIterator[pb.Job]:
        """Every finished epoch not sent yet, then the job's state, on every change, until the
        job is final. Identical consecutive messages are sent once. A client that leaves
        (cancel, deadline) cancels the handler's task, which ends this generator."""
        last: bytes | None = None
        sent_epoch = 0
        trouble_since: float | None = None
        while True:
            try:
                info = await self._call(self._queue.get, job_id)
                message = job_message(info)
                trouble_since = None
            except (JobNotFound, QueueUnavailable):
                if last is None:
                    raise  # nothing streamed yet: say so right away
                now = time.monotonic()
                trouble_since = now if trouble_since is None else trouble_since
                if now - trouble_since > self._grace:
                    raise
                message = None
            if message is not None:
                epochs, sent_epoch = epoch_messages(info, sent_epoch)
                for update in [*epochs, message]:
                    data = update.SerializeToString(deterministic=True)
                    if data != last:
                        last = data
                        yield update
                if message.status in FINAL:
                    return
            if self._draining():
                raise Unavailable(
                    "the server is shutting down; watch again (the job keeps running)"
                )
            await asyncio.sleep(self._interval)
