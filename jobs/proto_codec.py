"""`jobs.views.JobView` <-> `cnn.v1.Job` (proto/cnn/v1/training.proto), both directions.

The server encodes with it, `cnn_client` decodes with it: the one place that knows how a job
view is laid out on the wire. What the wire cannot say exactly:

- proto3 scalars cannot be unset: an empty string, 0 or 0.0 on the wire decodes to None for
  ``model``, ``queue``, ``stage``, ``error``, ``model_version``, ``spec``,
  ``tensorboard_dir`` and the timestamps,
  and a progress figure the worker did not report (None) travels as 0.0 (only
  ``val_accuracy``, ``val_loss`` and ``lr`` are optional on the wire);
- Watch streams send each finished epoch as a message of its own and encode the views without
  their ``epochs`` (``with_epochs=False``), so a stream does not grow with the job's age.

`wire_view` is a view as a gRPC client receives it (from Get or List), so that a tool can show
exactly the same thing whichever way it reached the queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jobs.status import JobStatus
from jobs.views import EpochSnapshot, JobView, Phase, Progress
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


#: The optional figures of a regression job's progress.
_REGRESSION_FIGURES = ("train_r2", "val_r2", "val_mae", "val_rmse")


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
    if progress.val_loss is not None:
        message.val_loss = progress.val_loss
    if progress.lr is not None:
        message.lr = progress.lr
    if progress.updated_at is not None:
        message.updated_at = progress.updated_at
    for name in _REGRESSION_FIGURES:
        if (value := getattr(progress, name)) is not None:
            setattr(message, name, value)
    return message


def _optional(message: pb.Progress, name: str) -> float | None:
    return getattr(message, name) if message.HasField(name) else None


def encode_epoch(snapshot: EpochSnapshot) -> pb.Progress:
    """A finished epoch as `cnn.v1.Progress` (phase unset, ``updated_at`` = when it ended)."""
    message = encode_progress(snapshot.as_progress())
    message.ClearField("phase")
    message.updated_at = snapshot.at
    return message


def decode_epoch(message: pb.Progress) -> EpochSnapshot:
    """A `cnn.v1.Progress` from ``Job.epochs`` as a finished epoch."""
    return EpochSnapshot.from_progress(decode_progress(message), at=message.updated_at)


def decode_progress(message: pb.Progress) -> Progress:
    """A `cnn.v1.Progress` as a progress report; an unknown or empty phase reads as training."""
    return Progress(
        epoch=message.epoch,
        epochs=message.epochs,
        step=message.step,
        total_steps=message.total_steps,
        loss=message.loss,
        # a regression job has no accuracy: the wire's 0.0 means "not reported" then
        train_accuracy=None if message.HasField("train_r2") else message.train_accuracy,
        val_accuracy=_optional(message, "val_accuracy"),
        val_loss=_optional(message, "val_loss"),
        lr=_optional(message, "lr"),
        images_per_s=message.images_per_s,
        eta_s=message.eta_s,
        phase=_phase(message.phase),
        updated_at=message.updated_at or None,
        train_r2=_optional(message, "train_r2"),
        val_r2=_optional(message, "val_r2"),
        val_mae=_optional(message, "val_mae"),
        val_rmse=_optional(message, "val_rmse"),
    )


def encode_job(view: JobView, *, with_epochs: bool = True) -> pb.Job:
    """A job view as `cnn.v1.Job`; its finished epochs too unless `with_epochs` is false."""
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
        queue=view.queue or "",
        stage=view.stage or "",
        attempts=view.attempts,
        tensorboard_dir=view.tensorboard_dir or "",
    )
    if with_epochs:
        message.epochs.extend(encode_epoch(snapshot) for snapshot in view.epochs)
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
        queue=message.queue or None,
        stage=message.stage or None,
        progress=decode_progress(message.progress) if message.HasField("progress") else None,
        epochs=tuple(decode_epoch(epoch) for epoch in message.epochs),
        attempts=message.attempts,
        error=message.error or None,
        model_version=message.model_version or None,
        metrics=dict(message.metrics),
        enqueued_at=message.enqueued_at or None,
        started_at=message.started_at or None,
        ended_at=message.ended_at or None,
        spec=_spec(message.spec_json),
        tensorboard_dir=message.tensorboard_dir or None,
    )


def wire_view(view: JobView, *, with_epochs: bool = True) -> JobView:
    """`view` as a gRPC client receives it: from Get or List, or from Watch when `with_epochs`
    is false (a watch sends each finished epoch as a message of its own)."""
    return decode_job(encode_job(view, with_epochs=with_epochs))


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
