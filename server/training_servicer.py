"""`cnn.v1.Training`: submit and follow training jobs for services that do not speak RQ.

A thin servicer over `jobs.queue.JobQueue`: `server.training_codec` checks each request and
encodes each job view, `JobQueue` does the queue operation, `jobs.follow.afollow` drives Watch.
Neither `rq` nor `worker` is imported: the queue's Redis layout is `jobs`' contract.

The handlers run on the server's event loop; every `JobQueue` call (blocking Redis I/O) runs in
the `blocking` thread pool, so a slow or unreachable Redis never stalls classification. The
queue's Redis client has short timeouts; its failures become UNAVAILABLE naming Redis. Those
responses carry ``grpc-retry-pushback-ms: -1`` so that clients with a gRPC retry policy do not
retry what the server already retried (the answer then comes in about a second, not five).

Submit passes its optional ``request_id`` with the caller's identity (`training_codec.submitter`)
to `JobQueue.submission`, which answers a repeated request with the job its first attempt
queued (`jobs.request_ids`).

Watch sends what `afollow` emits: every finished epoch not sent yet (oldest first), then the
job's state on every change, until the job ends; between polls a stream holds no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from jobs.follow import afollow
from jobs.queue import JobQueue
from jobs.views import JobView
from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server import rate_limit
from server import training_codec as codec
from server.errors import LimitExceeded, Unavailable, map_errors, map_stream_errors
from server.rate_limit import RateLimiter

T = TypeVar("T")

#: Trailing metadata telling gRPC clients not to retry this UNAVAILABLE (the server already did).
NO_CLIENT_RETRY = (("grpc-retry-pushback-ms", "-1"),)


class TrainingServicer(pb_grpc.TrainingServicer):
    """Translate `cnn.v1.Training` messages to `JobQueue` calls and back.

    Args:
        queue: the job queue (its blocking calls run in `blocking`).
        blocking: the executor for `JobQueue` calls.
        max_watches: concurrent Watch streams (a stream holds no thread between polls).
        watch_interval_s: how often a Watch polls the job.
        draining: true once the server shuts down; open Watch streams then end (UNAVAILABLE).
        watch_grace_s: how long a Watch rides out Redis being unreachable (or the job hash
            missing after a Redis restart) before it gives up.
        submit_limiter: Submit calls per caller (default: no limit).
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
        submit_limiter: RateLimiter | None = None,
    ) -> None:
        self._queue = queue
        self._blocking = blocking
        self._max_watches = max_watches
        self._watching = 0
        self._interval = watch_interval_s
        self._draining = draining
        self._grace = watch_grace_s
        self._submits = submit_limiter or RateLimiter(0, 1)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the blocking pool; `jobs` errors propagate as they are."""
        return await asyncio.get_running_loop().run_in_executor(self._blocking, fn, *args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """`_run`, with `jobs` errors turned into the server's (NOT_FOUND, UNAVAILABLE, ...)."""
        with codec.queue_errors():
            return await self._run(fn, *args)

    @map_errors
    async def Submit(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        refused = rate_limit.refusal(
            self._submits, context.peer(), "submits", "CNN_SUBMIT_BURST, CNN_SUBMIT_RATE_PER_MIN"
        )
        if refused:
            raise LimitExceeded(refused)
        spec_json = codec.spec_json(request.spec_json)
        submitted = await self._call(
            lambda: self._queue.submission(
                spec_json,
                request_id=codec.request_id(request.request_id),
                caller=codec.submitter(context.peer_identities()),
            )
        )
        return pb.SubmitResponse(job_id=submitted.job_id, duplicate=submitted.duplicate)

    @map_errors
    async def Get(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        view = await self._call(self._queue.get, codec.job_id(request.job_id))
        return codec.job_message(view)

    @map_errors
    async def Cancel(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        view = await self._call(self._queue.cancel, codec.job_id(request.job_id))
        return codec.cancel_response(view)

    @map_errors
    async def List(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        status, limit = codec.list_query(request)
        views = await self._call(lambda: self._queue.list(status=status, limit=limit))
        return pb.ListJobsResponse(jobs=[codec.job_message(view) for view in views])

    @map_stream_errors
    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Job]:
        context.set_trailing_metadata(NO_CLIENT_RETRY)
        job_id = codec.job_id(request.job_id)
        if self._watching >= self._max_watches:
            raise LimitExceeded(
                f"{self._max_watches} Watch streams are open, the server's limit "
                "(CNN_MAX_WATCHES): retry later or poll Training.Get"
            )
        self._watching += 1
        try:
            # Answer an unknown job or an unreachable Redis at once, not after riding it out.
            await self._call(self._queue.get, job_id)
            last: bytes | None = None
            async for view in self._follow(job_id):
                message = codec.job_message(view, with_epochs=False)  # one message per epoch
                data = message.SerializeToString(deterministic=True)
                if data != last:  # views that differ only where the wire does not look
                    last = data
                    yield message
        finally:
            self._watching -= 1

    async def _follow(self, job_id: str) -> AsyncIterator[JobView]:
        """`afollow` over the queue, ended (UNAVAILABLE) when the server drains. A client that
        leaves (cancel, deadline) cancels the handler's task, which ends this generator."""

        async def get() -> JobView:
            if self._draining():
                raise Unavailable(
                    "the server is shutting down; watch again (the job keeps running)"
                )
            return await self._run(self._queue.get, job_id)

        with codec.queue_errors():
            async for view in afollow(
                get, poll_interval_s=self._interval, outage_limit_s=self._grace
            ):
                yield view
