"""RQ job functions. Enqueued by path string (`jobs.spec.TRAIN_FUNCTION`) with one JSON payload.

Runs in the work horse (a forked child of the worker). The payload is validated again here: a
job may have been enqueued by any client, so the worker trusts nothing it did not check.

Retry policy: the job is enqueued with ``Retry(max=CNN_JOB_RETRIES)``; those retries are meant
for lost work (horse or worker killed, machine lost). An exception raised by the training itself
(bad data, timeout, invalid spec) is deterministic, so `train_job` sets ``retries_left = 0``
before re-raising and the job goes straight to FAILED with a one-line ``meta["error"]``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any

from rq import get_current_job
from rq.job import Job

from jobs import meta as job_meta
from jobs.spec import InvalidSpec, parse_spec
from worker.progress import JobMetaWriter, ProgressReporter
from worker.runner import failure_reason
from worker.settings import WorkerSettings
from worker.train import run_training

log = logging.getLogger("worker.jobs")


def train_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Train and publish the model described by `payload` (a `TrainSpec` as JSON).

    Progress goes to ``job.meta["progress"]`` (throttled), one snapshot per finished epoch to
    ``job.meta["epochs"]``, timings to ``job.meta["timings"]``.

    Returns:
        ``{"model", "version", "path", "metrics", "epochs_run", "resumed", "timings"}``.

    Raises:
        InvalidSpec: the payload is not a valid spec (naming the fields).
        Exception: anything training raises; the job FAILS without retry.
    """
    entered = time.monotonic()
    job = get_current_job()
    if job is None:
        raise RuntimeError("train_job must run inside an RQ job")
    settings = WorkerSettings.from_env()
    writer = JobMetaWriter(job)
    _start_attempt(job, writer)
    try:
        spec = parse_spec(payload)
        reporter = ProgressReporter(
            writer,
            min_interval=settings.progress_interval,
            epochs=list(job.meta.get("epochs") or []),  # a retried job keeps its earlier epochs
        )

        def on_stage(name: str, details: dict[str, Any]) -> None:
            writer.update(stage=name, **({"stage_details": details} if details else {}))

        outcome = run_training(
            spec, settings, job_id=job.id, on_progress=reporter, on_stage=on_stage
        )
    except BaseException as exc:
        job.retries_left = 0  # deterministic failure: retrying would fail the same way
        if isinstance(exc, InvalidSpec):
            reason = "invalid training spec: " + "; ".join(exc.errors)
        else:
            reason = failure_reason(type(exc), exc)
        writer.update(stage="failed", error=reason, error_final=True)
        raise
    timings = dict(outcome.timings)
    if reporter.first_step_at is not None:
        # Start-up overhead: job function entered -> first optimizer step reported (data
        # loading, model build, kernel cache load or compile, first step itself).
        timings["startup_to_first_step_s"] = round(reporter.first_step_at - entered, 4)
    outcome.timings = timings
    writer.update(**job_meta.result_update(outcome.version, outcome.metrics, timings))
    log.info("job %s published %s version %d", job.id, outcome.name, outcome.version)
    return outcome.as_result()


def _start_attempt(job: Job, writer: JobMetaWriter) -> None:
    """Record who runs this attempt; move a previous attempt's error to ``previous_errors``."""
    meta = job.meta
    attempts = int(meta.get("attempts", 0)) + 1
    previous = list(meta.get("previous_errors", []))
    if meta.get("error"):
        previous.append(meta["error"])
    for key in ("error", "error_final", "progress", "timings", "stage_details"):
        meta.pop(key, None)
    writer.update(
        attempts=attempts,
        previous_errors=previous,
        stage="starting",
        worker={
            "name": os.environ.get("RQ_WORKER_ID", ""),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
        },
    )
