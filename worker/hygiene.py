"""Clean-up of files that jobs leave behind in the model repository when things go wrong.

Run by idle workers as part of their periodic maintenance (`worker.runner.TrainingWorker`);
several workers may share one repository, so every removal tolerates a concurrent one.

- ``<models>/<name>/.tmp-*``: a publish that died between creating its hidden directory and
  renaming it into place (horse killed, disk full). Removed once untouched for `TMP_MAX_AGE_S`:
  a publish in progress takes seconds.
- ``<models>/.checkpoints/<job id>/``: a checkpoint whose job no longer needs it, i.e. the job
  is not queued, scheduled, deferred or running (it finished, failed for good, was stopped or
  cancelled, or its record expired from Redis) *and* the checkpoint is untouched for the
  result TTL (CNN_RESULT_TTL), the time a failed job can still be re-queued to resume.
- ``<data>/tensorboard/<job id>/``: a job's TensorBoard event files, by the same rule with
  their own, longer age (CNN_TENSORBOARD_TTL; 0 keeps them for ever): they are what a user
  looks at after the job, so they outlive its record by default.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from worker.settings import WorkerSettings

log = logging.getLogger("worker.hygiene")

#: Age (s since the last change) after which a hidden publish directory counts as abandoned.
TMP_MAX_AGE_S = 3600
#: Job states in which a checkpoint may still be resumed from.
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


@dataclass
class CleanupReport:
    """What one clean-up pass removed (paths)."""

    temp_dirs: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    event_dirs: list[Path] = field(default_factory=list)


def last_change(path: Path) -> float:
    """Newest mtime of `path` and its direct children (a directory's own mtime misses writes
    into existing files)."""
    newest = path.stat().st_mtime
    try:
        for child in path.iterdir():
            try:
                newest = max(newest, child.stat().st_mtime)
            except FileNotFoundError:
                continue
    except NotADirectoryError:
        pass
    return newest


def _remove(path: Path) -> bool:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False  # another worker was faster
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
        return False
    return True


def stale_temp_dirs(models_dir: Path, *, now: float, max_age_s: float) -> list[Path]:
    """``<models>/<name>/.tmp-*`` entries untouched for more than `max_age_s` seconds."""
    found: list[Path] = []
    if not models_dir.is_dir():
        return found
    for model in models_dir.iterdir():
        if model.name.startswith(".") or not model.is_dir():
            continue  # .checkpoints and other hidden top-level entries are not model names
        for entry in model.glob(".tmp-*"):
            try:
                if now - last_change(entry) > max_age_s:
                    found.append(entry)
            except FileNotFoundError:
                continue
    return found


def _job_active(connection: redis.Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in ACTIVE


def _ended_job_dirs(
    root: Path, connection: redis.Redis, *, now: float, max_age_s: float
) -> list[Path]:
    """Entries ``root/<job id>`` untouched for `max_age_s` whose job is not queued or running."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    for entry in root.iterdir():
        try:
            if now - last_change(entry) <= max_age_s:
                continue
        except FileNotFoundError:
            continue
        if not _job_active(connection, entry.name):
            found.append(entry)
    return found


def stale_checkpoints(
    settings: WorkerSettings, connection: redis.Redis, *, now: float
) -> list[Path]:
    """Checkpoint directories of jobs that will not resume, untouched for the result TTL."""
    return _ended_job_dirs(
        settings.checkpoints_dir, connection, now=now, max_age_s=settings.result_ttl
    )


def stale_event_dirs(
    settings: WorkerSettings, connection: redis.Redis, *, now: float
) -> list[Path]:
    """TensorBoard event-file directories of ended jobs, untouched for CNN_TENSORBOARD_TTL."""
    if settings.tensorboard_ttl == 0:
        return []
    from jobs.tensorboard import LOG_ROOT

    return _ended_job_dirs(
        settings.data_dir / LOG_ROOT, connection, now=now, max_age_s=settings.tensorboard_ttl
    )


def clean_up(
    settings: WorkerSettings,
    connection: redis.Redis,
    *,
    now: float | None = None,
    tmp_max_age_s: float = TMP_MAX_AGE_S,
) -> CleanupReport:
    """Remove abandoned publish directories, unneeded old checkpoints and old event files
    (see the module doc).

    Raises:
        redis.RedisError: Redis unreachable (nothing about checkpoints is decided then).
    """
    moment = time.time() if now is None else now
    report = CleanupReport()
    for path in stale_temp_dirs(settings.models_dir, now=moment, max_age_s=tmp_max_age_s):
        if _remove(path):
            report.temp_dirs.append(path)
            log.info("removed abandoned publish directory %s", path)
    for path in stale_checkpoints(settings, connection, now=moment):
        if _remove(path):
            report.checkpoints.append(path)
            log.info("removed the checkpoint of ended job %s", path.name)
    for path in stale_event_dirs(settings, connection, now=moment):
        if _remove(path):
            report.event_dirs.append(path)
            log.info("removed the TensorBoard event files of ended job %s", path.name)
    return report
