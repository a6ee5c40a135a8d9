"""Training progress in ``job.meta["progress"]``, throttled, surviving Redis hiccups.

Besides the latest progress (overwritten), every epoch end is appended to ``job.meta["epochs"]``
(compact snapshots, the newest `MAX_EPOCH_SNAPSHOTS` kept), so a watcher that polls less often
than epochs end still sees each of them.

Runs in the work horse. A write never raises: a progress update is not worth a training run, so
a ConnectionError is logged and the next update tries again (the connection itself retries with
backoff, see `jobs.connection`). If Redis lost the job's hash (a restart without persistence),
the horse still holds the whole job and writes it back, so `cnn train watch` keeps working.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis

log = logging.getLogger("worker.progress")

#: Epoch snapshots kept in ``job.meta["epochs"]`` (the oldest are dropped first).
MAX_EPOCH_SNAPSHOTS = 100

#: Fields of an epoch snapshot, taken from `core.training.Progress` at ``phase == "epoch_end"``.
EPOCH_FIELDS = (
    "epoch",
    "epochs",
    "step",
    "total_steps",
    "loss",
    "train_accuracy",
    "val_accuracy",
    "val_loss",
    "lr",
    "images_per_s",
    "eta_s",
)


class MetaJob(Protocol):
    """The part of `rq.job.Job` the reporter needs (kept narrow for tests and mypy)."""

    meta: dict[str, Any]

    @property
    def key(self) -> Any: ...

    @property
    def connection(self) -> redis.Redis: ...

    def save_meta(self) -> None: ...

    def save(self) -> None: ...


class JobMetaWriter:
    """Writes ``job.meta`` (always complete) and never raises on a Redis outage."""

    def __init__(self, job: MetaJob) -> None:
        self.job = job
        self.failed_writes = 0

    def update(self, **fields: Any) -> bool:
        """Set meta fields and store them; returns False if Redis could not be reached."""
        self.job.meta.update(fields)
        return self.flush()

    def flush(self) -> bool:
        try:
            if self.job.connection.exists(self.job.key):
                self.job.save_meta()
            else:
                log.warning(
                    "job hash %s is missing from Redis (restart?): writing it back", self.job.key
                )
                self.job.save()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.failed_writes += 1
            log.warning("progress not saved (Redis unavailable: %s); will retry", exc)
            return False
        return True


class ProgressReporter:
    """`on_progress` callback for `core.training.fit`: at most one write per `min_interval` s.

    A write is forced when the epoch or phase changes and at the last step, so epoch ends and
    the final state are never dropped by the throttle. Each epoch end is also appended to
    ``epochs`` (written as ``meta["epochs"]``); a re-run epoch (a retried job resuming from an
    earlier checkpoint) replaces its old snapshot and every later one.

    ``first_step_at`` records (monotonic clock) when the first training step reported, which is
    how the job measures its start-up overhead.
    """

    def __init__(
        self,
        writer: JobMetaWriter,
        *,
        min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        epochs: list[dict[str, Any]] | None = None,
        max_epochs: int = MAX_EPOCH_SNAPSHOTS,
    ) -> None:
        self._writer = writer
        self._min_interval = min_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_write: float | None = None
        self._last_key: tuple[Any, Any] | None = None
        self.first_step_at: float | None = None
        self.epochs: list[dict[str, Any]] = [dict(e) for e in epochs or [] if isinstance(e, dict)]
        self._max_epochs = max_epochs
        self.writes = 0
        self.calls = 0

    def __call__(self, progress: Any) -> None:
        now = self._clock()
        self.calls += 1
        data = _as_dict(progress)
        if self.first_step_at is None and int(data.get("step") or 0) > 0:
            self.first_step_at = now
        key = (data.get("epoch"), data.get("phase"))
        last_step = data.get("total_steps") is not None and data.get("step") == data.get(
            "total_steps"
        )
        due = self._last_write is None or now - self._last_write >= self._min_interval
        if not (due or last_step or key != self._last_key):
            return
        self._last_write = now
        self._last_key = key
        data["updated_at"] = self._wall_clock()
        self.writes += 1
        if data.get("phase") == "epoch_end":
            self._add_epoch(data)
            self._writer.update(progress=data, epochs=list(self.epochs))
        else:
            self._writer.update(progress=data)

    def _add_epoch(self, data: dict[str, Any]) -> None:
        # Same values as the progress written with it, so a watcher can tell them apart from
        # nothing but the time: Training.Watch then sends the epoch end once, not twice.
        snapshot = {k: data.get(k) for k in EPOCH_FIELDS}
        snapshot["at"] = round(float(data["updated_at"]), 3)
        epoch = snapshot.get("epoch")
        if isinstance(epoch, int):
            self.epochs = [e for e in self.epochs if _epoch_of(e) < epoch]
        self.epochs.append(snapshot)
        del self.epochs[: max(0, len(self.epochs) - self._max_epochs)]


def _epoch_of(snapshot: dict[str, Any]) -> int:
    value = snapshot.get("epoch")
    return value if isinstance(value, int) else 0


def _as_dict(progress: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(progress) and not isinstance(progress, type):
        raw = dataclasses.asdict(progress)
    elif isinstance(progress, dict):
        raw = dict(progress)
    else:
        raw = dict(vars(progress))
    return {k: _jsonable(v) for k, v in raw.items()}


def _jsonable(value: Any) -> Any:
    """numpy scalars -> Python numbers; NaN/inf -> None (JSON has neither)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
