"""Cancel requests that survive the hand-over from the queue to a worker.

RQ's ``Job.cancel()`` only sets the status of a *queued* job. A worker that has just taken the
job off the queue still runs it: its work horse then writes ``status = started`` over the
``canceled``. So a cancel also leaves a mark (``cnn:cancel:<job id>``), in this order:

- `jobs.queue.JobQueue.cancel`: set the mark, *then* read the status (queued: cancel it in a
  transaction watching the job; started: send RQ's stop command);
- the work horse (`worker.runner.TrainingWorker`): write ``started``, *then* look for the mark
  (found: the job is cancelled without running).

Whatever the interleaving, one side sees the other: either the horse finds the mark, or the
mark came after ``started`` was written and the client reads ``started`` and stops the job.
"""

from __future__ import annotations

import redis

CANCEL_KEY_PREFIX = "cnn:cancel:"


def cancel_key(job_id: str) -> str:
    return f"{CANCEL_KEY_PREFIX}{job_id}"


def request_cancel(connection: redis.Redis, job_id: str, *, ttl_s: int) -> None:
    """Leave the mark for `job_id` (kept `ttl_s` seconds, like the job record)."""
    connection.set(cancel_key(job_id), b"1", ex=max(1, int(ttl_s)))


def withdraw_cancel(connection: redis.Redis, job_id: str) -> None:
    """Remove the mark (the job had already ended: a later re-queue must still run)."""
    connection.delete(cancel_key(job_id))


def cancel_requested(connection: redis.Redis, job_id: str) -> bool:
    return bool(connection.exists(cancel_key(job_id)))
