"""Idempotency keys of submits: a retried submit finds the job its first attempt queued.

A caller sends a ``request_id`` with a submit and the same one again on every retry of that
submit (`cnn_client.CnnClient.submit` makes one per call; gRPC's retries resend it). Redis
keeps ``cnn:request:<queue>:<caller hash>:<request_id>`` -> ``{"job_id", "spec_sha256",
"at"}`` for ``CNN_REQUEST_ID_TTL_S`` seconds. `jobs.queue.JobQueue.submit` writes that key in
the same MULTI/EXEC as the job itself, WATCHing the key, so:

- two submits with one key racing each other: one transaction wins, the other's WATCH fails,
  it reads the key again and answers with the winner's job;
- a crash of the submitter before EXEC stores neither the job nor the key (the retry queues it
  once); after EXEC both are stored (the retry gets that job). Redis applies a transaction
  whole: a snapshot holds both or neither, an AOF cut inside one is dropped on load.

A key names the spec it was used with (sha256 of the validated spec before data sets and warm
starts are pinned, so a retry after a new upload of the data set still matches); the same key
with another spec is `RequestIdReused`. The key outlives neither its TTL nor a Redis without
persistence; once it is gone the same request queues a new job.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobs.errors import InvalidRequestId, RequestIdReused

REQUEST_KEY_PREFIX = "cnn:request:"
#: What a request id may look like: short, and safe inside a Redis key and a log line.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_request_id(value: str) -> str:
    """A well-formed request id.

    Raises:
        InvalidRequestId: not 1-128 characters of [A-Za-z0-9_.:-] starting with a letter or
            digit (a UUID fits).
    """
    if not REQUEST_ID_PATTERN.match(value):
        raise InvalidRequestId(
            f"request_id {value[:40]!r} is malformed: expected 1-128 characters from "
            "[A-Za-z0-9_.:-] starting with a letter or digit (a UUID fits)"
        )
    return value


def spec_fingerprint(payload: dict[str, Any]) -> str:
    """sha256 of a spec payload's canonical JSON: equal for equal specs, whatever their text."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RequestClaim:
    """One submit's claim on its request id: the Redis key and what it stores.

    Args:
        queue: the queue submitted to (keys of different queues never meet).
        caller: who submits (`server.training_codec.submitter`; "" for every caller alike).
        request_id: the caller's key, checked with `check_request_id`.
        fingerprint: `spec_fingerprint` of the submitted spec.
    """

    queue: str
    caller: str
    request_id: str
    fingerprint: str

    @property
    def key(self) -> str:
        caller = hashlib.sha256(self.caller.encode()).hexdigest()[:16]
        return f"{REQUEST_KEY_PREFIX}{self.queue}:{caller}:{self.request_id}"

    def record(self, job_id: str, at: float | None = None) -> bytes:
        """What the key holds once `job_id` was queued for this request."""
        at = time.time() if at is None else at
        return json.dumps(
            {"job_id": job_id, "spec_sha256": self.fingerprint, "at": at}, sort_keys=True
        ).encode()

    def earlier_job(self, stored: bytes | str | None) -> str | None:
        """The job an earlier submit with this key queued (None: no earlier submit).

        Raises:
            RequestIdReused: the earlier submit sent another spec.
        """
        if stored is None:
            return None
        record = json.loads(stored)
        if record["spec_sha256"] != self.fingerprint:
            when = datetime.fromtimestamp(float(record["at"]), tz=UTC).isoformat(timespec="seconds")
            raise RequestIdReused(self.request_id, str(record["job_id"]), when)
        return str(record["job_id"])
