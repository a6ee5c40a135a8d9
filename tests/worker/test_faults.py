"""Faults: timeouts, cancel, crashing jobs, SIGKILLed horses and workers, Redis restarts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from core.repository import ModelRepository
from jobs.errors import JobAlreadyEnded
from jobs.queue import JobQueue
from jobs.status import JobStatus
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.support.workers import wait_until_ended
from tests.worker.helpers import job_record, tiny_spec

pytestmark = pytest.mark.integration

#: ~1230 steps (a few seconds) with a checkpoint every 10 steps: long enough to hit mid-run.
LONG = {"epochs": 30, "checkpoint_every": 10}
#: Waits for a job's progress or end (tiny specs on a warm compile cache; guards hangs only).
JOB_LIMIT_S = 300.0


def _progress_step(queue: JobQueue, job_id: str) -> int:
    progress = queue.get(job_id).progress
    return progress.step if progress is not None else 0


def _returned(queue: JobQueue, job_id: str) -> dict[str, Any]:
    """What the job function returned (rq's result: worker detail callers do not see)."""
    job = Job.fetch(job_id, connection=queue._redis, serializer=JSONSerializer)
    value = job.return_value()
    assert isinstance(value, dict)
    return value


def _only_versions(models_dir: Path, name: str) -> list[str]:
    """Every entry under <models>/<name>, hidden ones included: nothing partial may show."""
    directory = models_dir / name
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_job_timeout_fails_with_a_one_line_reason_and_no_retry(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    worker = start_worker()
    job_id = job_queue.submit(
        tiny_spec("digits-timeout", epochs=1000, timeout_s=3)
    )  # CNN_MAX_EPOCHS
    info = wait_until_ended(job_queue, job_id, JOB_LIMIT_S)

    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.startswith("timed out")
    assert "\n" not in info.error
    assert info.attempts == 1
    job = Job.fetch(job_id, connection=job_queue._redis, serializer=JSONSerializer)
    latest = job.latest_result()
    assert latest is not None and "JobTimeoutException" in (latest.exc_string or "")  # traceback
    assert _only_versions(models_dir, "digits-timeout") == []
    assert worker.poll() is None


def test_a_crashing_job_fails_with_its_reason_and_the_worker_carries_on(
    start_worker, job_queue: JobQueue, models_dir: Path, tmp_path: Path
) -> None:
    worker = start_worker()
    bad = job_queue.submit(tiny_spec("digits-crash", dataset={"name": "npz", "path": "nope.npz"}))
    info = wait_until_ended(job_queue, bad, JOB_LIMIT_S)
    assert info.status is JobStatus.FAILED and info.attempts == 1
    assert info.error and "nope.npz" in info.error and "\n" not in info.error
    assert str(tmp_path) not in info.error  # callers see no server paths (the data dir's)
    assert list(job_queue.follow(bad))[-1].error == info.error

    good = wait_until_ended(
        job_queue, job_queue.submit(tiny_spec("digits-after-crash")), JOB_LIMIT_S
    )
    assert good.status is JobStatus.FINISHED
    assert worker.poll() is None


def test_cancel_running_job_stops_it_without_publishing(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    worker = start_worker()
    job_id = job_queue.submit(tiny_spec("digits-cancel", **LONG))
    wait_for(
        lambda: _progress_step(job_queue, job_id) >= 5,
        timeout=JOB_LIMIT_S,
        what="training progress",
    )

    info = job_queue.cancel(job_id, stop_wait_s=60)
    assert info.status is JobStatus.CANCELLED and info.error == "stopped by user"
    assert _only_versions(models_dir, "digits-cancel") == []
    wait_for(
        lambda: not (models_dir / ".checkpoints" / job_id).exists(),
        timeout=EVENT_LIMIT_S,
        what="checkpoint removal",
    )
    assert worker.poll() is None


def test_cancel_queued_job(job_queue: JobQueue) -> None:
    job_id = job_queue.submit(tiny_spec("digits-queued"))
    assert job_queue.cancel(job_id).status is JobStatus.CANCELLED
    assert job_queue.get(job_id).status is JobStatus.CANCELLED
    with pytest.raises(JobAlreadyEnded):
        job_queue.cancel(job_id)


def test_sigkilled_work_horse_is_requeued_and_resumes_from_its_checkpoint(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    worker = start_worker()
    job_id = job_queue.submit(tiny_spec("digits-horse", **LONG))
    wait_for(
        lambda: (
            (models_dir / ".checkpoints" / job_id / "checkpoint.json").exists()
            and _progress_step(job_queue, job_id) >= 25
        ),
        timeout=JOB_LIMIT_S,
        what="a checkpoint",
    )
    os.kill(job_record(job_queue, job_id)["worker"]["pid"], signal.SIGKILL)

    info = wait_until_ended(job_queue, job_id, JOB_LIMIT_S)
    assert info.status is JobStatus.FINISHED
    assert info.attempts == 2
    record = job_record(job_queue, job_id)
    assert "work horse died (signal 9 (SIGKILL))" in record["previous_errors"][0]
    assert _returned(job_queue, job_id)["resumed"] is True
    assert ModelRepository(models_dir).versions("digits-horse") == [1]
    assert worker.poll() is None


def test_sigkilled_worker_job_is_requeued_by_another_worker_and_resumes(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    first = start_worker("doomed")
    job_id = job_queue.submit(tiny_spec("digits-worker", **LONG))
    wait_for(
        lambda: (
            (models_dir / ".checkpoints" / job_id / "checkpoint.json").exists()
            and _progress_step(job_queue, job_id) >= 25
        ),
        timeout=JOB_LIMIT_S,
        what="a checkpoint",
    )
    horse_pid = job_record(job_queue, job_id)["worker"]["pid"]
    start_worker("rescuer")

    first.signal_group(signal.SIGKILL)  # the worker; its horse is in its own process group
    wait_for(lambda: not _alive(horse_pid), timeout=EVENT_LIMIT_S, what="the orphaned horse to die")

    info = wait_until_ended(job_queue, job_id, JOB_LIMIT_S)
    assert info.status is JobStatus.FINISHED
    assert info.attempts == 2
    record = job_record(job_queue, job_id)
    assert record["previous_errors"] and record["previous_errors"][0].startswith("abandoned")
    assert record["worker"]["name"].startswith("rescuer")
    assert _returned(job_queue, job_id)["resumed"] is True
    assert _only_versions(models_dir, "digits-worker") == ["1"]


def test_worker_reconnects_after_redis_restarts_mid_job(
    start_worker, job_queue: JobQueue, models_dir: Path, redis_server: RedisServer
) -> None:
    worker = start_worker()
    job_id = job_queue.submit(tiny_spec("digits-redis", **LONG))
    wait_for(
        lambda: _progress_step(job_queue, job_id) >= 5,
        timeout=JOB_LIMIT_S,
        what="training progress",
    )

    redis_server.restart(down_for=2.0)  # no persistence: every key is gone

    repo = ModelRepository(models_dir)
    wait_for(lambda: repo.versions("digits-redis") == [1], timeout=JOB_LIMIT_S, what="version 1")
    info = wait_until_ended(job_queue, job_id, EVENT_LIMIT_S)  # the horse wrote the job back
    assert info.status is JobStatus.FINISHED and info.model_version == 1

    after = wait_until_ended(job_queue, job_queue.submit(tiny_spec("digits-redis")), JOB_LIMIT_S)
    assert after.status is JobStatus.FINISHED and after.model_version == 2
    assert worker.poll() is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
