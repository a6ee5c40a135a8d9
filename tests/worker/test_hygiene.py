"""Periodic clean-up: abandoned publish directories and checkpoints nobody will resume."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from tests.support.redis_server import RedisServer
from worker.hygiene import TMP_MAX_AGE_S, clean_up
from worker.runner import TrainingWorker
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

DAY = 24 * 3600


def _make(path: Path, age_s: float) -> Path:
    """A directory with one file, both last changed `age_s` seconds ago."""
    path.mkdir(parents=True)
    (path / "data").write_text("x")
    then = time.time() - age_s
    for p in (path / "data", path):
        os.utime(p, (then, then))
    return path


def _job(connection, status: JobStatus | None) -> str:
    queue = Queue("training", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("worker.jobs.train_job", {}, meta={"kind": "train"})
    if status is not None:
        job.set_status(status)
    return job.id


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(
        redis_url=redis_url,
        models_dir=tmp_path / "models",
        data_dir=tmp_path / "data",
        result_ttl=DAY,
        tensorboard_ttl=3 * DAY,
    )


def test_old_hidden_publish_directories_go_and_everything_else_stays(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    models = settings.models_dir
    old = _make(models / "digits" / ".tmp-dead", TMP_MAX_AGE_S + 60)
    fresh = _make(models / "digits" / ".tmp-publishing", 10)
    version = _make(models / "digits" / "1", 10 * DAY)
    report = clean_up(settings, redis_server.client())
    assert report.temp_dirs == [old] and not old.exists()
    assert fresh.exists() and version.exists()


def test_checkpoints_of_ended_jobs_older_than_the_result_ttl_go(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    connection = redis_server.client()
    root = settings.checkpoints_dir
    old = 2 * DAY
    gone = {
        "finished": _make(root / _job(connection, JobStatus.FINISHED), old),
        "failed": _make(root / _job(connection, JobStatus.FAILED), old),
        "stopped": _make(root / _job(connection, JobStatus.STOPPED), old),
        "expired": _make(root / "job-no-longer-in-redis", old),
    }
    kept = {
        "queued": _make(root / _job(connection, None), old),
        "running": _make(root / _job(connection, JobStatus.STARTED), old),
        "recent failure": _make(root / _job(connection, JobStatus.FAILED), DAY / 2),
    }
    report = clean_up(settings, connection)
    assert sorted(report.checkpoints) == sorted(gone.values())
    assert [name for name, path in gone.items() if path.exists()] == []
    assert [name for name, path in kept.items() if not path.exists()] == []


def test_event_files_of_ended_jobs_go_after_their_own_longer_ttl(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    connection = redis_server.client()
    root = settings.data_dir / "tensorboard"
    gone = {
        "finished": _make(root / _job(connection, JobStatus.FINISHED), 4 * DAY),
        "expired": _make(root / "job-no-longer-in-redis", 4 * DAY),
    }
    kept = {
        # older than the result TTL (a checkpoint would go) but not than the event-file TTL
        "finished 2 days ago": _make(root / _job(connection, JobStatus.FINISHED), 2 * DAY),
        "running": _make(root / _job(connection, JobStatus.STARTED), 4 * DAY),
    }
    report = clean_up(settings, connection)
    assert sorted(report.event_dirs) == sorted(gone.values())
    assert [name for name, path in gone.items() if path.exists()] == []
    assert [name for name, path in kept.items() if not path.exists()] == []
    assert report.checkpoints == []  # the two kinds of directory are not mixed up


def test_a_zero_event_file_ttl_keeps_them_for_ever(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    path = _make(settings.data_dir / "tensorboard" / "job-no-longer-in-redis", 400 * DAY)
    keep = settings.model_copy(update={"tensorboard_ttl": 0})
    assert clean_up(keep, redis_server.client()).event_dirs == []
    assert path.exists()


def test_a_recently_written_file_keeps_an_old_checkpoint_directory(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    path = _make(settings.checkpoints_dir / "expired-job", 2 * DAY)
    (path / "data").write_text("rewritten now")  # the directory's own mtime does not change
    assert clean_up(settings, redis_server.client()).checkpoints == []
    assert path.exists()


def test_worker_maintenance_runs_the_clean_up(
    redis_server: RedisServer, settings: WorkerSettings
) -> None:
    old = _make(settings.models_dir / "digits" / ".tmp-dead", TMP_MAX_AGE_S + 60)
    worker = TrainingWorker(
        ["training"], connection=redis_server.client(), serializer=JSONSerializer,
        settings=settings,
    )  # fmt: skip
    worker.run_maintenance_tasks()
    assert not old.exists()
