"""The queue operations: submit, get, list, cancel and follow training jobs.

`JobQueue` works over one thread-safe `redis.Redis` client and speaks RQ's layout through
`jobs.rq_layout`, so its callers (the server, the CLI) import neither `rq` nor the worker. A
spec is validated before Redis is contacted: an invalid spec enqueues nothing. Redis being
unreachable is one error, `QueueUnavailable`, naming the (redacted) URL. A submit may carry a
request id (`jobs.request_ids`): retried with it, it returns the job its first attempt queued.

Cancelling is safe against a worker taking the job off the queue at the same moment: the cancel
leaves a mark (`jobs.cancellation`) before it reads the status; a queued job is then cancelled
in one transaction that fails if a worker touched the job meanwhile, a running one is sent RQ's
stop command, and a work horse that finds the mark once it has marked the job started cancels
it without running it.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import redis

from core.datastore import DataStore
from core.repository import ModelRepository
from core.settings import redact_url
from jobs import meta as job_meta
from jobs import rq_layout
from jobs.cancellation import request_cancel, withdraw_cancel
from jobs.connection import QUEUE_RETRIES, connect
from jobs.datasets import pin_dataset
from jobs.errors import JobAlreadyEnded, JobNotFound, QueueFull, QueueUnavailable
from jobs.follow import DEFAULT_OUTAGE_LIMIT_S, DEFAULT_POLL_INTERVAL_S, follow
from jobs.limits import SpecLimits
from jobs.request_ids import RequestClaim, check_request_id, spec_fingerprint
from jobs.settings import QueueSettings
from jobs.spec import TRAIN_FUNCTION, TrainSpec, load_spec, parse_spec, parse_spec_json
from jobs.status import TERMINAL, JobStatus, RqStatus, from_rq
from jobs.views import JobView, Phase
from jobs.warm_start import pin_init_from

DEFAULT_LIST_LIMIT = 50
#: How long `cancel` waits for a running job to stop (its worker kills the work horse).
DEFAULT_STOP_WAIT_S = 10.0
#: Jobs read per round trip while listing.
_LIST_PAGE = 100


@dataclasses.dataclass(frozen=True)
class Submission:
    """What a submit did: the job id, and whether an earlier submit with the same request id
    had queued it (then this one queued nothing)."""

    job_id: str
    duplicate: bool = False


class JobQueue:
    """Training jobs on the queue described by `settings`, over `connection`.

    Args:
        connection: a Redis client (thread-safe; shared, not closed by `close` unless this
            queue made it with `connect`).
        settings: the queues, the Redis URL shown in errors, and what new jobs are given.
        datasets: the data store that specs naming uploaded data sets are pinned against
            (`jobs.datasets.pin_dataset`); default: the one on ``settings.data_dir``.
        models: the model repository a spec's ``init_from`` is checked and pinned against
            (`jobs.warm_start.pin_init_from`); None: this process cannot read it, a spec with
            ``init_from`` must then name the version.
    """

    def __init__(
        self,
        connection: redis.Redis,
        settings: QueueSettings,
        *,
        datasets: DataStore | None = None,
        models: ModelRepository | None = None,
    ) -> None:
        self._redis = connection
        self._settings = settings
        self._datasets = datasets if datasets is not None else DataStore(settings.data_dir)
        self._models = models
        self._owns_connection = False

    @classmethod
    def connect(
        cls,
        settings: QueueSettings,
        *,
        retries: int = QUEUE_RETRIES,
        datasets: DataStore | None = None,
        models: ModelRepository | None = None,
    ) -> JobQueue:
        """A queue over a new client for ``settings.redis_url`` (no connection made yet).

        The client times out after ``settings.redis_timeout_s`` (replies: twice that) and
        retries a failed command `retries` times with backoff. ``datasets`` and ``models`` as
        in the class.
        """
        connection = connect(
            settings.redis_url,
            retries=retries,
            connect_timeout=settings.redis_timeout_s,
            socket_timeout=2 * settings.redis_timeout_s,
        )
        queue = cls(connection, settings, datasets=datasets, models=models)
        queue._owns_connection = True
        return queue

    @property
    def settings(self) -> QueueSettings:
        return self._settings

    def close(self) -> None:
        """Close the client if this queue opened it."""
        if self._owns_connection:
            self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _reaching_redis(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailable(
                f"job queue (Redis at {redact_url(self._settings.redis_url)}) unreachable: {exc}"
            ) from None

    # -- operations ------------------------------------------------------------------------------

    def submit(
        self,
        spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str],
        *,
        request_id: str | None = None,
        caller: str = "",
    ) -> str:
        """`submission`'s job id."""
        return self.submission(spec, request_id=request_id, caller=caller).job_id

    def submission(
        self,
        spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str],
        *,
        request_id: str | None = None,
        caller: str = "",
    ) -> Submission:
        """Validate `spec` (against `settings.spec_limits()`), pin an uploaded data set it
        names to its content id (`jobs.datasets.pin_dataset`) and a warm start to its source
        version (`jobs.warm_start.pin_init_from`), and queue a training job on the
        first queue, unless it already holds `settings.max_queued_jobs` waiting jobs.

        The count and the enqueue are one transaction that WATCHes the queue's list: if a
        worker or another submitter changes it in between, the count is taken again, so
        concurrent submits cannot overshoot the limit. With a `request_id`, the same
        transaction stores it (`jobs.request_ids`): a submit with a request id `caller` used
        within `settings.request_id_ttl_s` returns that earlier job and queues nothing. If the
        answer of the transaction is lost (Redis connection cut after EXEC), the job's own
        record tells whether it went through: it is never queued twice.

        Args:
            spec: a `TrainSpec`, a decoded JSON object, JSON text, or the path of a spec file.
            request_id: the caller's idempotency key (None: every call queues a job).
            caller: whose request ids these are ("": one namespace for all callers).

        Returns:
            the job id, and whether it was queued by an earlier submit with `request_id`.

        Raises:
            InvalidSpec: naming each offending field (an uploaded data set that is not stored:
                ``dataset``, listing what is); nothing was queued.
            InvalidRequestId: `request_id` malformed; RequestIdReused: it was used with another
                spec. Nothing was queued.
            QueueFull: the queue holds its limit of waiting jobs; nothing was queued.
            FileNotFoundError: `spec` is a path and there is no such file.
            QueueUnavailable: Redis unreachable.
        """
        limits = self._settings.spec_limits()
        validated = _validated(spec, limits)
        claim = None
        if request_id is not None:
            claim = RequestClaim(
                self._settings.queue,
                caller,
                check_request_id(request_id),
                spec_fingerprint(validated.payload()),
            )
            # Answer a retry before pinning: its data set or source version may be gone since.
            with self._reaching_redis():
                earlier = claim.earlier_job(self._redis.get(claim.key))
            if earlier is not None:
                return Submission(earlier, duplicate=True)
        train_spec = pin_dataset(validated, self._datasets, limits)
        train_spec = pin_init_from(train_spec, self._models)
        job = rq_layout.NewJob(
            job_id=str(uuid.uuid4()),
            queue=self._settings.queue,
            func_name=TRAIN_FUNCTION,
            payload=train_spec.payload(),
            description=f"train {train_spec.name}",
            timeout_s=train_spec.timeout_s or self._settings.job_timeout,
            result_ttl=self._settings.result_ttl,
            retries=self._settings.job_retries,
            meta=job_meta.submitted(train_spec.name),
            submitted_at=time.time(),
        )
        with self._reaching_redis():
            return self._enqueue(job, claim)

    def _enqueue(self, job: rq_layout.NewJob, claim: RequestClaim | None) -> Submission:
        waiting = rq_layout.queue_key(job.queue)
        watched = [waiting] if claim is None else [waiting, claim.key]
        limit = self._settings.max_queued_jobs
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*watched)
                    if claim is not None:
                        earlier = claim.earlier_job(cast(bytes | None, pipe.get(claim.key)))
                        if earlier is not None:
                            return Submission(earlier, duplicate=True)
                    queued = int(pipe.llen(waiting))
                    if queued >= limit:
                        raise QueueFull(job.queue, queued, limit)
                    pipe.multi()
                    rq_layout.write_new_job(pipe, job)
                    if claim is not None:
                        record = claim.record(job.job_id, job.submitted_at)
                        pipe.set(claim.key, record, ex=self._settings.request_id_ttl_s)
                    pipe.execute()
                    return Submission(job.job_id, duplicate=False)
                except redis.WatchError:
                    # The queue or the key changed between the reads and the EXEC, or the
                    # connection broke around the EXEC (redis-py then raises WatchError too):
                    # if the job is stored, this transaction went through.
                    if self._redis.exists(rq_layout.job_key(job.job_id)):
                        return Submission(job.job_id, duplicate=False)
                    continue

    def get(self, job_id: str) -> JobView:
        """The job's current view.

        Raises:
            JobNotFound: no such job.
            QueueUnavailable: Redis unreachable.
        """
        with self._reaching_redis():
            stored = self._read(job_id)
        if stored is None:
            raise JobNotFound(job_id)
        return job_view(stored)

    def list(
        self, *, status: JobStatus | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[JobView]:
        """Jobs of every queue in `settings.queues`, newest first, at most `limit`.

        Args:
            status: only jobs with this status (None: all).

        Raises:
            ValueError: `limit` is below 1.
            QueueUnavailable: Redis unreachable.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        views: list[JobView] = []
        with self._reaching_redis():
            for ids in _ids_newest_first(self._redis, self._settings.queues):
                with self._redis.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hgetall(rq_layout.job_key(job_id))
                    hashes = pipe.execute()
                gone: list[str] = []
                for job_id, fields in zip(ids, hashes, strict=True):
                    stored = rq_layout.read_job(job_id, fields)
                    if stored is None:
                        gone.append(job_id)
                        continue
                    view = job_view(stored)
                    if status is None or view.status is status:
                        views.append(view)
                        if len(views) == limit:
                            return views
                _forget(self._redis, self._settings.queues, gone)
        return views

    def cancel(self, job_id: str, *, stop_wait_s: float = DEFAULT_STOP_WAIT_S) -> JobView:
        """Cancel a queued job, or stop a running one and wait up to `stop_wait_s` for it.

        Returns:
            the job's view afterwards (CANCELLED, or still RUNNING if its worker has not
            stopped it within `stop_wait_s`).

        Raises:
            JobNotFound: no such job.
            JobAlreadyEnded: the job had already finished, failed or been cancelled.
            QueueUnavailable: Redis unreachable.
        """
        with self._reaching_redis():
            if not self._redis.exists(rq_layout.job_key(job_id)):
                raise JobNotFound(job_id)
            # First the mark, then the status (see jobs.cancellation).
            request_cancel(self._redis, job_id, ttl_s=self._settings.result_ttl)
            cancelled, stored = self._cancel_if_waiting(job_id)
        if cancelled:
            return self.get(job_id)
        status = from_rq(stored.status)
        if status in TERMINAL:
            if stored.status is not RqStatus.CANCELED:
                # It ran to its end: a later re-queue must run. (A cancel's mark stays: a
                # worker may still hold the job.)
                with self._reaching_redis():
                    withdraw_cancel(self._redis, job_id)
            raise JobAlreadyEnded(job_id, status)
        if stored.worker_name:
            with self._reaching_redis():
                rq_layout.send_stop_job(self._redis, stored.worker_name, job_id)
        return self._wait_until_ended(job_id, stop_wait_s)

    def follow(
        self,
        job_id: str,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
    ) -> Iterator[JobView]:
        """Views of the job until it ends (see `jobs.follow`)."""
        return follow(
            lambda: self.get(job_id),
            poll_interval_s=poll_interval_s,
            outage_limit_s=outage_limit_s,
        )

    # -- internals -------------------------------------------------------------------------------

    def _read(self, job_id: str) -> rq_layout.StoredJob | None:
        return rq_layout.read_job(job_id, self._redis.hgetall(rq_layout.job_key(job_id)))

    def _cancel_if_waiting(self, job_id: str) -> tuple[bool, rq_layout.StoredJob]:
        """Cancel the job if it is waiting, atomically against a worker taking it.

        Returns:
            whether this call cancelled it, and the job as read before the cancel.
        """
        key = rq_layout.job_key(job_id)
        while True:
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    stored = rq_layout.read_job(job_id, pipe.hgetall(key))
                    if stored is None:
                        raise JobNotFound(job_id)
                    if from_rq(stored.status) is not JobStatus.QUEUED:
                        return False, stored
                    update = job_meta.stage_update(job_meta.Stage.CANCELLED)
                    pipe.multi()
                    rq_layout.cancel_queued(pipe, stored, {**stored.meta, **update}, time.time())
                    pipe.execute()
                    return True, stored
                except redis.WatchError:
                    continue  # a worker changed the job meanwhile: read it again

    def _wait_until_ended(self, job_id: str, wait_s: float) -> JobView:
        deadline = time.monotonic() + wait_s
        while True:
            view = self.get(job_id)
            if view.terminal or time.monotonic() >= deadline:
                return view
            time.sleep(0.1)


def _ids_newest_first(connection: redis.Redis, queues: Sequence[str]) -> Iterator[list[str]]:
    """Ids in the indexes of `queues`, newest first, a page at a time."""
    entries: list[tuple[float, str]] = []
    for queue in queues:
        scored = cast(
            list[tuple[bytes, float]],
            connection.zrange(rq_layout.index_key(queue), 0, -1, withscores=True),
        )
        entries.extend((float(score), member.decode()) for member, score in scored)
    entries.sort(reverse=True)
    ids = [job_id for _, job_id in entries]
    for start in range(0, len(ids), _LIST_PAGE):
        yield ids[start : start + _LIST_PAGE]


def _forget(connection: redis.Redis, queues: Sequence[str], job_ids: list[str]) -> None:
    """Drop index entries whose job hash expired."""
    if not job_ids:
        return
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrem(rq_layout.index_key(queue), *job_ids)
        pipe.execute()


def _validated(
    spec: TrainSpec | Mapping[str, Any] | str | os.PathLike[str], limits: SpecLimits
) -> TrainSpec:
    if isinstance(spec, TrainSpec):  # validated already; held to these caps all the same
        return parse_spec(spec.payload(), limits)
    if isinstance(spec, os.PathLike):
        return load_spec(Path(spec), limits)
    if isinstance(spec, str):
        return parse_spec_json(spec, limits)
    return parse_spec(dict(spec), limits)


def job_view(stored: rq_layout.StoredJob) -> JobView:
    """What a caller sees of a stored job (also a job someone enqueued without `submit`)."""
    record = job_meta.read_meta(stored.meta)
    status = from_rq(stored.status)
    progress = record.progress
    if progress is not None and record.stage == job_meta.Stage.PUBLISHING:
        progress = dataclasses.replace(progress, phase=Phase.PUBLISHING)
    spec = stored.args[0] if stored.args and isinstance(stored.args[0], dict) else None
    error = record.error
    if status is JobStatus.FAILED and not error:
        error = "failed without a recorded reason (see the worker's log)"
    return JobView(
        id=stored.job_id,
        status=status,
        model=record.model
        or (spec.get("name") if spec and isinstance(spec.get("name"), str) else None),
        queue=stored.queue,
        stage=record.stage,
        progress=progress,
        epochs=record.epochs,
        error=error,
        model_version=record.model_version if status is JobStatus.FINISHED else None,
        metrics=dict(record.metrics) if status is JobStatus.FINISHED else {},
        attempts=record.attempts,
        enqueued_at=stored.enqueued_at,
        started_at=stored.started_at,
        ended_at=stored.ended_at,
        spec=spec,
        tensorboard_dir=record.tensorboard_dir,
    )


def _spec_name(spec: Mapping[str, Any] | None) -> str | None:
    name = spec.get("name") if spec is not None else None
    return name if isinstance(name, str) else None
