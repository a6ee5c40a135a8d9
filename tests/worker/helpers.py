"""Helpers shared by the worker tests (specs, waiting for jobs, job records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.queue import JobQueue
from jobs.views import JobView
from tests.support.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def tiny_spec(name: str = "digits-tiny", **overrides: Any) -> dict[str, Any]:
    """A small CNN on digits: ~1.5 s per epoch on two shared cores."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"name": "digits"},
        "architecture": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
        "epochs": 1,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.003},
        "seed": 0,
        "validation_split": 0.1,
    }
    spec.update(overrides)
    return spec


def wait_until_ended(queue: JobQueue, job_id: str, timeout: float) -> JobView:
    """The job's view once it has ended; fails the test after `timeout` s."""
    ended: JobView = wait_for(
        lambda: (view := queue.get(job_id)).terminal and view,
        timeout,
        interval=0.2,
        what=f"job {job_id} to end",
    )
    return ended


def job_record(queue: JobQueue, job_id: str) -> dict[str, Any]:
    """The job's raw ``job.meta`` (who ran it, earlier errors, timings: worker details that
    callers do not see), read through rq itself."""
    job = Job.fetch(job_id, connection=queue._redis, serializer=JSONSerializer)
    return dict(job.get_meta(refresh=True))


def write_spec(directory: Path, spec: dict[str, Any], filename: str = "spec.json") -> Path:
    path = directory / filename
    path.write_text(json.dumps(spec))
    return path
