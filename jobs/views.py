"""What a caller sees of a training job: frozen values, the same over Redis and over gRPC.

`JobView` is built from Redis by `jobs.queue.JobQueue` and from the wire by
`jobs.proto_codec`; the CLI renders it whichever way it came. `as_dict` is its JSON form
(``--json`` output): statuses and phases as their words, times as Unix seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobs.status import TERMINAL, JobStatus


class Phase(StrEnum):
    """What a running job is doing (the phases documented in training.proto)."""

    LOADING = "loading"
    TRAINING = "training"
    EVALUATING = "evaluating"
    PUBLISHING = "publishing"


@dataclass(frozen=True)
class Progress:
    """The latest progress report of a running job.

    ``epoch`` counts from 1 up to ``epochs``; ``step`` is the number of optimizer steps done out
    of ``total_steps``; ``loss`` (cross-entropy, nats) and ``train_accuracy`` ([0, 1]) are running
    means over the epoch so far; ``val_accuracy``/``val_loss`` come from the last finished epoch
    (None before it or without a validation split); ``eta_s`` is seconds to completion;
    ``updated_at`` is when the worker wrote it (Unix s).
    """

    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    phase: Phase = Phase.TRAINING
    updated_at: float | None = None
    #: A regression job: R² over the epoch so far; the last epoch's validation figures.
    train_r2: float | None = None
    val_r2: float | None = None
    val_mae: float | None = None
    val_rmse: float | None = None


@dataclass(frozen=True)
class EpochSnapshot:
    """The figures of one finished epoch (``at``: when it ended, Unix s)."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    at: float
    loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    train_r2: float | None = None
    val_r2: float | None = None
    val_mae: float | None = None
    val_rmse: float | None = None

    @classmethod
    def from_progress(cls, progress: Progress, at: float) -> EpochSnapshot:
        """The snapshot of an epoch that ended at `at` showing `progress`."""
        return cls(
            epoch=progress.epoch,
            epochs=progress.epochs,
            step=progress.step,
            total_steps=progress.total_steps,
            at=at,
            loss=progress.loss,
            train_accuracy=progress.train_accuracy,
            val_accuracy=progress.val_accuracy,
            val_loss=progress.val_loss,
            lr=progress.lr,
            images_per_s=progress.images_per_s,
            eta_s=progress.eta_s,
            train_r2=progress.train_r2,
            val_r2=progress.val_r2,
            val_mae=progress.val_mae,
            val_rmse=progress.val_rmse,
        )

    def as_progress(self) -> Progress:
        """The progress report the job showed when this epoch ended."""
        return Progress(
            epoch=self.epoch,
            epochs=self.epochs,
            step=self.step,
            total_steps=self.total_steps,
            loss=self.loss,
            train_accuracy=self.train_accuracy,
            val_accuracy=self.val_accuracy,
            val_loss=self.val_loss,
            lr=self.lr,
            images_per_s=self.images_per_s,
            eta_s=self.eta_s,
            phase=Phase.EVALUATING,
            updated_at=self.at,
            train_r2=self.train_r2,
            val_r2=self.val_r2,
            val_mae=self.val_mae,
            val_rmse=self.val_rmse,
        )


@dataclass(frozen=True)
class JobView:
    """One training job.

    Attributes:
        id: the job id (what submit returned).
        status: where it is in its lifecycle.
        model: the model it trains (the spec's ``name``).
        queue: the queue it was submitted to.
        stage: the worker's last stage word (`jobs.meta.Stage`), None before a worker took it.
        progress: the latest progress report, None before training started.
        epochs: one snapshot per finished epoch, oldest first.
        error: one line saying why it failed (or was stopped), None otherwise.
        model_version: the version published when FINISHED.
        metrics: final metrics when FINISHED (e.g. ``test_accuracy``), unitless.
        attempts: how many times a worker started it (retries after lost workers count).
        enqueued_at, started_at, ended_at: Unix s, None until reached.
        spec: the submitted training spec (JSON object).
        tensorboard_dir: where the job writes TensorBoard event files, relative to the data
            volume (``tensorboard/<job id>``, `jobs.tensorboard`); None when it writes none or
            no worker has started it yet.
    """

    id: str
    status: JobStatus
    model: str | None = None
    queue: str | None = None
    stage: str | None = None
    progress: Progress | None = None
    epochs: tuple[EpochSnapshot, ...] = ()
    error: str | None = None
    model_version: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    attempts: int = 0
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    spec: Mapping[str, Any] | None = None
    tensorboard_dir: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (it will not change any more)."""
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form: enums as their words, nested values as plain dicts and lists."""
        return {
            "id": self.id,
            "status": self.status.value,
            "model": self.model,
            "queue": self.queue,
            "stage": self.stage,
            "progress": _plain(self.progress) if self.progress is not None else None,
            "epochs": [_plain(snapshot) for snapshot in self.epochs],
            "error": self.error,
            "model_version": self.model_version,
            "metrics": dict(self.metrics),
            "attempts": self.attempts,
            "enqueued_at": self.enqueued_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "spec": dict(self.spec) if self.spec is not None else None,
            "tensorboard_dir": self.tensorboard_dir,
        }


def _plain(value: Progress | EpochSnapshot) -> dict[str, Any]:
    data = dataclasses.asdict(value)
    if isinstance(value, Progress):
        data["phase"] = value.phase.value
    return data
