"""The ``job.meta`` record: the one definition of what the worker writes and readers parse.

RQ stores a job's ``meta`` as one JSON object in the job hash. Ours carries everything a caller
sees besides the status and the timestamps: the model, the worker's stage, the latest progress,
one snapshot per finished epoch, the attempt count, the error, and the result (published
version and metrics), so readers never parse RQ's own result stream.

The key strings appear only in this module. Writers (the worker) build updates with the
functions below (`submitted`, `stage_update`, `progress_update`, ...) and store them with
``meta.update(...)``; readers turn a stored record into typed values with `read_meta`. Readers
are lenient: a field that is missing or has the wrong type reads as absent, because a record
may have been written by an older worker or by hand.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobs.views import EpochSnapshot, Phase, Progress

#: ``meta["kind"]`` of a training job.
KIND_TRAIN = "train"

#: Epoch snapshots kept in a record (the oldest are dropped first).
MAX_EPOCH_SNAPSHOTS = 100


class Key(StrEnum):
    """The keys of ``job.meta``."""

    KIND = "kind"
    MODEL = "model"
    STAGE = "stage"
    STAGE_DETAILS = "stage_details"
    PROGRESS = "progress"
    EPOCHS = "epochs"
    ATTEMPTS = "attempts"
    PREVIOUS_ERRORS = "previous_errors"
    WORKER = "worker"
    TIMINGS = "timings"
    ERROR = "error"
    ERROR_FINAL = "error_final"
    RESULT = "result"
    TENSORBOARD = "tensorboard"


class Stage(StrEnum):
    """What the worker last reported doing with the job (``meta["stage"]``)."""

    QUEUED = "queued"
    STARTING = "starting"
    LOADED = "loaded"
    RESUMING = "resuming"
    TRAINING = "training"
    PUBLISHING = "publishing"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Keys an attempt owns: a new attempt (a retry after a lost worker) starts without them.
ATTEMPT_KEYS = (Key.ERROR, Key.ERROR_FINAL, Key.PROGRESS, Key.TIMINGS, Key.STAGE_DETAILS)

#: core.training's progress phases -> the phases callers see.
_CORE_PHASES = {"train": Phase.TRAINING, "epoch_end": Phase.EVALUATING}


@dataclass(frozen=True)
class JobMeta:
    """A ``job.meta`` record, read."""

    kind: str | None = None
    model: str | None = None
    stage: str | None = None
    progress: Progress | None = None
    epochs: tuple[EpochSnapshot, ...] = ()
    attempts: int = 0
    previous_errors: tuple[str, ...] = ()
    error: str | None = None
    error_final: bool = False
    model_version: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    tensorboard_dir: str | None = None


# -- writing ---------------------------------------------------------------------------------


def submitted(model: str) -> dict[str, Any]:
    """The record a job starts with."""
    return {Key.KIND: KIND_TRAIN, Key.MODEL: model, Key.STAGE: Stage.QUEUED.value}


def stage_update(stage: Stage, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The worker moved to `stage` (details, e.g. the input shape, shown by ``status``)."""
    update: dict[str, Any] = {Key.STAGE: stage.value}
    if details:
        update[Key.STAGE_DETAILS] = jsonable(dict(details))
    return update


def attempt_update(
    record: Mapping[str, Any], worker: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A worker starts an attempt: count it and move the last attempt's error to the history.

    Returns:
        the update, and the keys of `record` the new attempt must drop (`ATTEMPT_KEYS`).
    """
    read = read_meta(record)
    previous = list(read.previous_errors)
    if read.error:
        previous.append(read.error)
    update: dict[str, Any] = {
        Key.ATTEMPTS: read.attempts + 1,
        Key.PREVIOUS_ERRORS: previous,
        Key.STAGE: Stage.STARTING.value,
        Key.WORKER: jsonable(dict(worker)),
    }
    return update, [key.value for key in ATTEMPT_KEYS if key in record]


def progress_from_core(report: Any, *, updated_at: float) -> Progress:
    """A `core.training.Progress` (or an object/dict with its fields) as a `Progress` view."""
    raw = _fields_of(report)
    phase = _CORE_PHASES.get(str(raw.get("phase")), Phase.TRAINING)
    return Progress(
        epoch=_int(raw.get("epoch")) or 0,
        epochs=_int(raw.get("epochs")) or 0,
        step=_int(raw.get("step")) or 0,
        total_steps=_int(raw.get("total_steps")) or 0,
        loss=_float(raw.get("loss")),
        train_accuracy=_float(raw.get("train_accuracy")),
        val_accuracy=_float(raw.get("val_accuracy")),
        val_loss=_float(raw.get("val_loss")),
        lr=_float(raw.get("lr")),
        images_per_s=_float(raw.get("images_per_s")),
        eta_s=_float(raw.get("eta_s")),
        phase=phase,
        updated_at=updated_at,
        train_r2=_float(raw.get("train_r2")),
        val_r2=_float(raw.get("val_r2")),
        val_mae=_float(raw.get("val_mae")),
        val_rmse=_float(raw.get("val_rmse")),
    )


def epoch_snapshot(progress: Progress) -> EpochSnapshot:
    """The snapshot of the epoch that `progress` (an epoch end) closes."""
    # The same instant as the progress written with it, so a follower can tell that the epoch
    # end and the current state are one report, not two.
    at = progress.updated_at if progress.updated_at is not None else 0.0
    return EpochSnapshot.from_progress(progress, at=at)


def progress_update(
    progress: Progress, epochs: Sequence[EpochSnapshot] | None = None
) -> dict[str, Any]:
    """The latest progress (and, at an epoch end, the epoch snapshots so far)."""
    update: dict[str, Any] = {Key.PROGRESS: _encode(progress)}
    if epochs is not None:
        update[Key.EPOCHS] = [_encode(snapshot) for snapshot in epochs[-MAX_EPOCH_SNAPSHOTS:]]
    return update


def tensorboard_update(relative_dir: str) -> dict[str, Any]:
    """The job writes TensorBoard event files to `relative_dir` (`jobs.tensorboard.log_dir`:
    relative to the data volume)."""
    return {Key.TENSORBOARD: relative_dir}


def failure_update(reason: str, *, final: bool) -> dict[str, Any]:
    """The attempt failed for `reason` (one line); `final`: no retry follows."""
    update: dict[str, Any] = {Key.ERROR: reason, Key.ERROR_FINAL: final}
    if final:
        update[Key.STAGE] = Stage.FAILED.value
    return update


def result_update(
    version: int, metrics: Mapping[str, Any], timings: Mapping[str, float]
) -> dict[str, Any]:
    """The job published `version` of its model with these final `metrics`."""
    numbers = {str(k): float(v) for k, v in metrics.items() if _float(v) is not None}
    return {
        Key.STAGE: Stage.FINISHED.value,
        Key.RESULT: {"version": int(version), "metrics": numbers},
        Key.TIMINGS: jsonable(dict(timings)),
    }


def has_error(record: Mapping[str, Any]) -> bool:
    """Whether the current attempt already recorded why it failed."""
    return bool(record.get(Key.ERROR))


# -- reading ---------------------------------------------------------------------------------


def read_meta(record: Mapping[str, Any] | None) -> JobMeta:
    """A stored ``job.meta`` record as typed values (see the module doc on leniency)."""
    if not isinstance(record, Mapping):
        return JobMeta()
    result = record.get(Key.RESULT)
    result = result if isinstance(result, Mapping) else {}
    metrics = result.get("metrics")
    epochs = record.get(Key.EPOCHS)
    previous = record.get(Key.PREVIOUS_ERRORS)
    return JobMeta(
        kind=_str(record.get(Key.KIND)),
        model=_str(record.get(Key.MODEL)),
        stage=_str(record.get(Key.STAGE)),
        progress=_decode_progress(record.get(Key.PROGRESS)),
        epochs=tuple(
            snapshot
            for snapshot in (_decode_snapshot(item) for item in _list(epochs))
            if snapshot is not None
        ),
        attempts=_int(record.get(Key.ATTEMPTS)) or 0,
        previous_errors=tuple(str(item) for item in _list(previous) if isinstance(item, str)),
        error=_str(record.get(Key.ERROR)),
        error_final=record.get(Key.ERROR_FINAL) is True,
        model_version=_int(result.get("version")),
        metrics={
            str(k): number
            for k, v in (metrics.items() if isinstance(metrics, Mapping) else ())
            if (number := _float(v)) is not None
        },
        tensorboard_dir=_str(record.get(Key.TENSORBOARD)),
    )


def _encode(value: Progress | EpochSnapshot) -> dict[str, Any]:
    data = jsonable(dataclasses.asdict(value))
    if isinstance(value, Progress):
        data["phase"] = value.phase.value
    return data


def _decode_progress(raw: Any) -> Progress | None:
    if not isinstance(raw, Mapping) or _int(raw.get("epoch")) is None:
        return None
    try:
        phase = Phase(str(raw.get("phase")))
    except ValueError:
        phase = _CORE_PHASES.get(str(raw.get("phase")), Phase.TRAINING)
    return dataclasses.replace(
        progress_from_core(raw, updated_at=_float(raw.get("updated_at")) or 0.0),
        phase=phase,
        updated_at=_float(raw.get("updated_at")),
    )


def _decode_snapshot(raw: Any) -> EpochSnapshot | None:
    if not isinstance(raw, Mapping) or _int(raw.get("epoch")) is None:
        return None
    progress = progress_from_core(raw, updated_at=_float(raw.get("at")) or 0.0)
    return epoch_snapshot(progress)


def _fields_of(report: Any) -> Mapping[str, Any]:
    if isinstance(report, Mapping):
        return report
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return dict(vars(report))


def jsonable(value: Any) -> Any:
    """numpy scalars -> Python numbers; NaN/inf -> None (JSON has neither), recursively."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _float(value: Any) -> float | None:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
