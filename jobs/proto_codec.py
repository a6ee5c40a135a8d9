"""`jobs.views.JobView` <-> `cnn.v1.Job` (proto/cnn/v1/training.proto), both directions.

The server encodes with it, `cnn_client` decodes with it: the one place that knows how a job
view is laid out on the wire. The wire is unchanged by this codec and carries less than a view:

- not carried: ``queue``, ``stage``, ``epochs`` (Watch sends one message per finished epoch
  instead), ``attempts``, and the progress fields ``val_loss``, ``lr``, ``updated_at``; they
  decode to their defaults;
- proto3 scalars cannot be unset: an empty string, 0 or 0.0 on the wire decodes to None for
  ``model``, ``error``, ``model_version``, ``spec`` and the timestamps, and a progress figure
  the worker did not report (None) travels as 0.0 (only ``val_accuracy`` is optional).

`wire_view` is a view as a gRPC client receives it, so that a tool can show exactly the same
thing whichever way it reached the queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jobs.status import JobStatus
from jobs.views import JobView, Phase, Progress
from proto.cnn.v1 import training_pb2 as pb

_TO_WIRE: dict[JobStatus, pb.JobStatus] = {
    JobStatus.QUEUED: pb.JOB_STATUS_QUEUED,
    JobStatus.RUNNING: pb.JOB_STATUS_RUNNING,
    JobStatus.FINISHED: pb.JOB_STATUS_FINISHED,
    JobStatus.FAILED: pb.JOB_STATUS_FAILED,
    JobStatus.CANCELLED: pb.JOB_STATUS_CANCELLED,
}
_FROM_WIRE: dict[int, JobStatus] = {wire: status for status, wire in _TO_WIRE.items()}


def encode_status(status: JobStatus) -> pb.JobStatus:
    """The wire value of a status."""
    return _TO_WIRE[status]


def decode_status(value: int) -> JobStatus:
    """The status of a wire value.

    Raises:
        ValueError: UNSPECIFIED or a value this version does not know (names the value).
    """
    try:
        return _FROM_WIRE[value]
    except KeyError:
        known = ", ".join(f"{wire} ({status})" for wire, status in sorted(_FROM_WIRE.items()))
        raise ValueError(f"status: {value} is not a job status (known: {known})") from None


def encode_progress(progress: Progress) -> pb.Progress:
    """A progress report as `cnn.v1.Progress` (unreported figures as 0.0)."""
    message = pb.Progress(
        epoch=progress.epoch,
        epochs=progress.epochs,
        step=progress.step,
        total_steps=progress.total_steps,
        loss=_or_zero(progress.loss),
        train_accuracy=_or_zero(progress.train_accuracy),
        images_per_s=_or_zero(progress.images_per_s),
        eta_s=_or_zero(progress.eta_s),
        phase=progress.phase.value,
    )
    if progress.val_accuracy is not None:
        message.val_accuracy = progress.val_accuracy
    return message


def decode_progress(message: pb.Progress) -> Progress:
    """A `cnn.v1.Progress` as a progress report; an unknown or empty phase reads as training."""
    return Progress(
        epoch=message.epoch,
        epochs=message.epochs,
        step=message.step,
        total_steps=message.total_steps,
        loss=message.loss,
        train_accuracy=message.train_accuracy,
        val_accuracy=message.val_accuracy if message.HasField("val_accuracy") else None,
        images_per_s=message.images_per_s,
        eta_s=message.eta_s,
        phase=_phase(message.phase),
    )


def encode_job(view: JobView) -> pb.Job:
    """A job view as `cnn.v1.Job` (see the module docstring for what the wire leaves out)."""
    message = pb.Job(
        job_id=view.id,
        status=encode_status(view.status),
        model_name=view.model or "",
        spec_json=json.dumps(dict(view.spec), sort_keys=True) if view.spec is not None else "",
        error=view.error or "",
        model_version=view.model_version or 0,
        enqueued_at=_or_zero(view.enqueued_at),
        started_at=_or_zero(view.started_at),
        ended_at=_or_zero(view.ended_at),
    )
    if view.progress is not None:
        message.progress.CopyFrom(encode_progress(view.progress))
    for key, value in view.metrics.items():
        message.metrics[key] = float(value)
    return message


def decode_job(message: pb.Job) -> JobView:
    """A `cnn.v1.Job` as a job view.

    Raises:
        ValueError: the status is UNSPECIFIED or unknown.
    """
    return JobView(
        id=message.job_id,
        status=decode_status(message.status),
        model=message.model_name or None,
        progress=decode_progress(message.progress) if message.HasField("progress") else None,
        error=message.error or None,
        model_version=message.model_version or None,
        metrics=dict(message.metrics),
        enqueued_at=message.enqueued_at or None,
        started_at=message.started_at or None,
        ended_at=message.ended_at or None,
        spec=_spec(message.spec_json),
    )


def wire_view(view: JobView) -> JobView:
    """`view` as a gRPC client receives it: what `cnn.v1.Job` carries, the rest defaulted."""
    return decode_job(encode_job(view))


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def _phase(word: str) -> Phase:
    try:
        return Phase(word)
    except ValueError:  # empty (an older server) or a phase this version does not know
        return Phase.TRAINING


def _spec(spec_json: str) -> Mapping[str, Any] | None:
    if not spec_json:
        return None
    try:
        spec = json.loads(spec_json)
    except json.JSONDecodeError:
        return None  # the spec is informative only: a garbled one must not break a Get
    return spec if isinstance(spec, dict) else None
