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

from core.redaction import hide_paths
from jobs import meta as job_meta
from jobs.spec import InvalidSpec, parse_spec
from jobs.tensorboard import log_dir
from worker.progress import JobMetaWriter, ProgressReporter
from worker.runner import failure_reason
from worker.settings import WorkerSettings
from worker.train import run_training

log = logging.getLogger("worker.jobs")


def train_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Train and publish the model described by `payload` (a `TrainSpec` as JSON).

    Progress (throttled), one snapshot per finished epoch, the result (version, metrics) and
    timings go to the job record (`jobs.meta`), where every reader finds them.

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
        spec = parse_spec(payload, settings.spec_limits())
        if spec.tensorboard is not None:  # callers learn where before the first event
            writer.update(job_meta.tensorboard_update(log_dir(job.id)))
        reporter = ProgressReporter(
            writer,
            min_interval=settings.progress_interval,
            # A retried job keeps its earlier epochs.
            epochs=job_meta.read_meta(job.meta).epochs,
        )

        def on_stage(name: str, details: dict[str, Any]) -> None:
            writer.update(job_meta.stage_update(job_meta.Stage(name), details))

        outcome = run_training(
            spec, settings, job_id=job.id, on_progress=reporter, on_stage=on_stage
        )
    except BaseException as exc:
        job.retries_left = 0  # deterministic failure: retrying would fail the same way
        if isinstance(exc, InvalidSpec):
            reason = "invalid training spec: " + "; ".join(exc.errors)
        else:
            reason = failure_reason(type(exc), exc)
        # Callers read the reason (Training.Get, cnn train status): data and model paths
        # relative to their volumes, no other server path; the worker's log keeps them all.
        reason = hide_paths(reason, [settings.data_dir, settings.models_dir])
        writer.update(job_meta.failure_update(reason, final=True))
        raise
    timings = dict(outcome.timings)
    if reporter.first_step_at is not None:
        # Start-up overhead: job function entered -> first optimizer step reported (data
        # loading, model build, kernel cache load or compile, first step itself).
        timings["startup_to_first_step_s"] = round(reporter.first_step_at - entered, 4)
    outcome.timings = timings
    writer.update(job_meta.result_update(outcome.version, outcome.metrics, timings))
    log.info("job %s published %s version %d", job.id, outcome.name, outcome.version)
    return outcome.as_result()


def _start_attempt(job: Job, writer: JobMetaWriter) -> None:
    """Record who runs this attempt; move a previous attempt's error to its history."""
    update, stale = job_meta.attempt_update(
        job.meta,
        worker={
            "name": os.environ.get("RQ_WORKER_ID", ""),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
        },
    )
    writer.update(update, drop=stale)
