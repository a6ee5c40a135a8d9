"""Helpers shared by the worker and jobs tests: the tiny spec, job records, spec files (starting
a worker and waiting for a job: `tests.support.workers`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from jobs.queue import JobQueue
from tests.support.training import training_spec

TINY_ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def tiny_spec(name: str = "digits-tiny", **overrides: Any) -> dict[str, Any]:
    """A small CNN on digits: ~1.5 s per epoch on two shared cores."""
    architecture = [dict(layer) for layer in TINY_ARCHITECTURE]  # a test may edit its copy
    return training_spec(name, {"name": "digits"}, architecture, **overrides)


def job_record(queue: JobQueue, job_id: str) -> dict[str, Any]:
    """The job's raw ``job.meta`` (who ran it, earlier errors, timings: worker details that
    callers do not see), read through rq itself."""
    job = Job.fetch(job_id, connection=queue._redis, serializer=JSONSerializer)
    return dict(job.get_meta(refresh=True))


def write_spec(directory: Path, spec: dict[str, Any], filename: str = "spec.json") -> Path:
    path = directory / filename
    path.write_text(json.dumps(spec))
    return path
