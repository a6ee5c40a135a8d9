"""How a training job lies in Redis: RQ 2.12's layout, written and read with redis-py.

The server submits, reads and cancels jobs without importing `rq` (nor the worker), so this
module owns the part of RQ's storage format the queue operations need, and
``tests/jobs/test_rq_layout.py`` holds it to `rq` itself (a job written here is fetched and run
by RQ; statuses RQ writes read back right). Only the layout is reproduced, from rq 2.12's
``Job.to_dict``/``restore``, ``Queue._enqueue_async_job``, ``Job.cancel`` and
``send_stop_job_command``:

- ``rq:job:<id>``: a hash. ``data`` is ``zlib(JSON([func_name, None, [payload], {}]))`` (RQ's
  JSONSerializer of ``(func_name, instance, args, kwargs)``); times are UTC
  ``%Y-%m-%dT%H:%M:%S.%fZ``; ``meta`` is JSON (`jobs.meta`); ``status`` an RQ word.
- ``rq:queue:<name>``: a list of job ids, RPUSHed, popped from the left by workers;
  ``rq:queues``: the set of queue keys.
- ``rq:canceled:<name>``: the canceled-job registry, a sorted set scored by cancel time.
- ``rq:pubsub:<worker name>``: the channel a worker takes commands on (``stop-job``).

Besides RQ's keys, ``cnn:jobs:<queue>`` indexes our jobs by submit time (a sorted set written
with the job), which is what listing reads; entries whose job hash expired are dropped there.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from jobs.status import RqStatus

JOB_KEY_PREFIX = "rq:job:"
QUEUE_KEY_PREFIX = "rq:queue:"
QUEUES_KEY = "rq:queues"
CANCELED_REGISTRY_PREFIX = "rq:canceled:"
PUBSUB_CHANNEL_PREFIX = "rq:pubsub:"
INDEX_KEY_PREFIX = "cnn:jobs:"

#: RQ's timestamp format (UTC, microseconds); older records lack the fraction.
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")


def job_key(job_id: str) -> str:
    return JOB_KEY_PREFIX + job_id


def queue_key(queue: str) -> str:
    return QUEUE_KEY_PREFIX + queue


def canceled_registry_key(queue: str) -> str:
    return CANCELED_REGISTRY_PREFIX + queue


def index_key(queue: str) -> str:
    return INDEX_KEY_PREFIX + queue


def format_time(moment: float) -> str:
    """Unix seconds as RQ writes a time."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime(_TIME_FORMATS[0])


def parse_time(raw: bytes | str | None) -> float | None:
    """An RQ time as Unix seconds (None when empty or unreadable)."""
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    for layout in _TIME_FORMATS:
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def encode_call(func_name: str, payload: Mapping[str, Any]) -> bytes:
    """The ``data`` field: the call ``func_name(payload)`` as RQ's JSONSerializer stores it."""
    return zlib.compress(json.dumps([func_name, None, [dict(payload)], {}]).encode())


def decode_call(raw: bytes | None) -> tuple[str | None, list[Any]]:
    """``(func_name, args)`` of a ``data`` field; ``(None, [])`` when it is not JSON we can read
    (e.g. a pickled job someone else enqueued)."""
    if not raw:
        return None, []
    try:
        text = zlib.decompress(raw)
    except zlib.error:
        text = raw  # RQ falls back to uncompressed data too
    try:
        call = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None, []
    if not isinstance(call, list) or len(call) != 4:
        return None, []
    func_name, _instance, args, _kwargs = call
    return (
        func_name if isinstance(func_name, str) else None,
        args if isinstance(args, list) else [],
    )


@dataclass(frozen=True)
class NewJob:
    """Everything `write_new_job` stores about a job being submitted."""

    job_id: str
    queue: str
    func_name: str
    payload: Mapping[str, Any]
    description: str
    timeout_s: int
    result_ttl: int
    retries: int
    meta: Mapping[str, Any]
    submitted_at: float


def write_new_job(pipe: redis.client.Pipeline, job: NewJob) -> None:
    """Queue `job` as RQ's ``Queue.enqueue`` does, and index it (commands added to `pipe`)."""
    at = format_time(job.submitted_at)
    fields: dict[Any, bytes | str | int] = {
        "created_at": at,
        "data": encode_call(job.func_name, job.payload),
        "success_callback_name": "",
        "failure_callback_name": "",
        "stopped_callback_name": "",
        "started_at": "",
        "ended_at": "",
        "last_heartbeat": "",
        "worker_name": "",
        "group_id": "",
        "origin": job.queue,
        "description": job.description,
        "enqueued_at": at,
        "timeout": job.timeout_s,
        "result_ttl": job.result_ttl,
        "failure_ttl": job.result_ttl,
        "status": RqStatus.QUEUED.value,
        "meta": json.dumps(dict(job.meta)),
    }
    if job.retries > 0:  # rq's Retry(max=n): n re-runs, no delay between them
        fields["retries_left"] = job.retries
        fields["retry_intervals"] = json.dumps([0])
    pipe.hset(job_key(job.job_id), mapping=fields)
    pipe.sadd(QUEUES_KEY, queue_key(job.queue))
    pipe.rpush(queue_key(job.queue), job.job_id)
    pipe.zadd(index_key(job.queue), {job.job_id: job.submitted_at})


@dataclass(frozen=True)
class StoredJob:
    """The fields of a job hash the queue operations read."""

    job_id: str
    status: RqStatus
    queue: str | None
    func_name: str | None
    args: list[Any]
    meta: Mapping[str, Any]
    worker_name: str | None
    enqueued_at: float | None
    started_at: float | None
    ended_at: float | None
    raw_meta: bytes | None = field(default=None, repr=False)


def read_job(job_id: str, fields: Mapping[Any, Any]) -> StoredJob | None:
    """A job hash as HGETALL returned it (None when empty: no such job)."""
    if not fields:
        return None

    def text(name: str) -> str | None:
        value = fields.get(name.encode())
        return value.decode(errors="replace") if value else None

    func_name, args = decode_call(fields.get(b"data"))
    raw_meta = fields.get(b"meta")
    try:
        meta = json.loads(raw_meta) if raw_meta else {}
    except (UnicodeDecodeError, ValueError):
        meta = {}
    return StoredJob(
        job_id=job_id,
        # A hash without status predates rq 2.4: RQ reads it as "created".
        status=RqStatus(text("status") or RqStatus.CREATED.value),
        queue=text("origin"),
        func_name=func_name,
        args=args,
        meta=meta if isinstance(meta, dict) else {},
        worker_name=text("worker_name"),
        enqueued_at=parse_time(fields.get(b"enqueued_at")),
        started_at=parse_time(fields.get(b"started_at")),
        ended_at=parse_time(fields.get(b"ended_at")),
        raw_meta=raw_meta,
    )


def cancel_queued(
    pipe: redis.client.Pipeline, job: StoredJob, meta: Mapping[str, Any], at: float
) -> None:
    """Cancel a waiting job as RQ's ``Job.cancel`` does: off its queue, status ``canceled``,
    into the canceled registry (commands added to `pipe`); `meta` is stored with it."""
    queue = job.queue or ""
    pipe.lrem(queue_key(queue), 0, job.job_id)
    pipe.hset(
        job_key(job.job_id),
        mapping={"status": RqStatus.CANCELED.value, "meta": json.dumps(dict(meta))},
    )
    pipe.zadd(canceled_registry_key(queue), {job.job_id: at})


def send_stop_job(connection: redis.Redis, worker_name: str, job_id: str) -> None:
    """Ask the worker running `job_id` to stop it (rq's ``send_stop_job_command``)."""
    payload = json.dumps({"command": "stop-job", "job_id": job_id})
    connection.publish(PUBSUB_CHANNEL_PREFIX + worker_name, payload)
