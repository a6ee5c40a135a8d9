"""Training progress in the job record (`jobs.meta`), throttled, surviving Redis hiccups.

Besides the latest progress (overwritten), every epoch end is added to the record's epoch
snapshots (the newest `jobs.meta.MAX_EPOCH_SNAPSHOTS` kept), so a follower that polls less often
than epochs end still sees each of them.

Runs in the work horse. A write never raises: a progress update is not worth a training run, so
a ConnectionError is logged and the next update tries again (the connection itself retries with
backoff, see `jobs.connection`). If Redis lost the job's hash (a restart without persistence),
the horse still holds the whole job and writes it back, so following the job keeps working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import redis

from jobs import meta as job_meta
from jobs.views import EpochSnapshot, Phase

log = logging.getLogger("worker.progress")


class MetaJob(Protocol):
    """The part of `rq.job.Job` the writer needs (kept narrow for tests and mypy)."""

    meta: dict[str, Any]

    @property
    def key(self) -> Any: ...

    @property
    def connection(self) -> redis.Redis: ...

    def save_meta(self) -> None: ...

    def save(self) -> None: ...


class MetaWriter(Protocol):
    """Where `ProgressReporter` sends its updates (`JobMetaWriter`, or a test's recorder)."""

    def update(self, fields: Mapping[str, Any]) -> bool: ...


class JobMetaWriter:
    """Writes ``job.meta`` (always complete) and never raises on a Redis outage."""

    def __init__(self, job: MetaJob) -> None:
        self.job = job
        self.failed_writes = 0

    def update(self, fields: Mapping[str, Any], *, drop: Iterable[str] = ()) -> bool:
        """Set `fields` (built by `jobs.meta`), remove the keys in `drop`, store the record.

        Returns:
            False if Redis could not be reached (the next update writes everything again).
        """
        for key in drop:
            self.job.meta.pop(key, None)
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
    the final state are never dropped by the throttle. Each epoch end is also added to the
    epoch snapshots; a re-run epoch (a retried job resuming from an earlier checkpoint) replaces
    its old snapshot and every later one. The first write also sets the stage to "training".

    ``first_step_at`` records (monotonic clock) when the first training step reported, which is
    how the job measures its start-up overhead.
    """

    def __init__(
        self,
        writer: MetaWriter,
        *,
        min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        epochs: Sequence[EpochSnapshot] = (),
        max_epochs: int = job_meta.MAX_EPOCH_SNAPSHOTS,
    ) -> None:
        self._writer = writer
        self._min_interval = min_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_write: float | None = None
        self._last_key: tuple[int, Phase] | None = None
        self.first_step_at: float | None = None
        self.epochs: list[EpochSnapshot] = list(epochs)
        self._max_epochs = max_epochs
        self.writes = 0
        self.calls = 0

    def __call__(self, report: Any) -> None:
        now = self._clock()
        self.calls += 1
        progress = job_meta.progress_from_core(report, updated_at=self._wall_clock())
        if self.first_step_at is None and progress.step > 0:
            self.first_step_at = now
        key = (progress.epoch, progress.phase)
        last_step = progress.total_steps > 0 and progress.step == progress.total_steps
        due = self._last_write is None or now - self._last_write >= self._min_interval
        if not (due or last_step or key != self._last_key):
            return
        first = self._last_write is None
        self._last_write = now
        self._last_key = key
        self.writes += 1
        update: dict[str, Any] = {}
        if first:
            update.update(job_meta.stage_update(job_meta.Stage.TRAINING))
        if progress.phase is Phase.EVALUATING:
            self._add_epoch(job_meta.epoch_snapshot(progress))
            update.update(job_meta.progress_update(progress, self.epochs))
        else:
            update.update(job_meta.progress_update(progress))
        self._writer.update(update)

    def _add_epoch(self, snapshot: EpochSnapshot) -> None:
        self.epochs = [e for e in self.epochs if e.epoch < snapshot.epoch]
        self.epochs.append(snapshot)
        del self.epochs[: max(0, len(self.epochs) - self._max_epochs)]
