"""Faults: timeouts, cancel, crashing jobs, SIGKILLed horses and workers, Redis restarts."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from core.repository import ModelRepository
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.worker.helpers import run_cli, tiny_spec
from worker import client

pytestmark = pytest.mark.integration

#: ~1230 steps (a few seconds) with a checkpoint every 10 steps: long enough to hit mid-run.
LONG = {"epochs": 30, "checkpoint_every": 10}
#: Waits for a job's progress or end (tiny specs on a warm compile cache; guards hangs only).
JOB_LIMIT_S = 300.0


def _progress_step(job_id: str) -> int:
    info = client.status(job_id)
    return int((info.progress or {}).get("step") or 0)


def _only_versions(models_dir: Path, name: str) -> list[str]:
    """Every entry under <models>/<name>, hidden ones included: nothing partial may show."""
    directory = models_dir / name
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_job_timeout_fails_with_a_one_line_reason_and_no_retry(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    worker = start_worker()
    job_id = client.submit(tiny_spec("digits-timeout", epochs=3000, timeout_s=3))
    info = client.poll(job_id, timeout=JOB_LIMIT_S)

    assert info.status == "failed"
    assert info.error is not None and info.error.startswith("timed out")
    assert "\n" not in info.error
    assert info.attempts == 1
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from worker.connection import connect

    job = Job.fetch(
        job_id, connection=connect(client_env["CNN_REDIS_URL"]), serializer=JSONSerializer
    )
    latest = job.latest_result()
    assert latest is not None and "JobTimeoutException" in (latest.exc_string or "")  # traceback
    assert _only_versions(models_dir, "digits-timeout") == []
    assert worker.poll() is None


def test_a_crashing_job_fails_with_its_reason_and_the_worker_carries_on(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    worker = start_worker()
    bad = client.submit(tiny_spec("digits-crash", dataset={"name": "npz", "path": "nope.npz"}))
    info = client.poll(bad, timeout=JOB_LIMIT_S)
    assert info.status == "failed" and info.attempts == 1
    assert info.error and "nope.npz" in info.error and "\n" not in info.error
    watched = run_cli(client_env, "train", "watch", bad)
    assert watched.returncode == 1 and "nope.npz" in watched.stdout + watched.stderr

    good = client.poll(client.submit(tiny_spec("digits-after-crash")), timeout=JOB_LIMIT_S)
    assert good.status == "finished"
    assert worker.poll() is None


def test_cancel_running_job_stops_it_without_publishing(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    worker = start_worker()
    job_id = client.submit(tiny_spec("digits-cancel", **LONG))
    wait_for(lambda: _progress_step(job_id) >= 5, timeout=JOB_LIMIT_S, what="training progress")

    assert client.cancel(job_id) == "stopped"
    info = client.status(job_id)
    assert info.status == "stopped" and info.error == "stopped by user"
    assert _only_versions(models_dir, "digits-cancel") == []
    wait_for(
        lambda: not (models_dir / ".checkpoints" / job_id).exists(),
        timeout=EVENT_LIMIT_S,
        what="checkpoint removal",
    )
    assert worker.poll() is None


def test_cancel_queued_job(client_env: dict[str, str]) -> None:
    job_id = client.submit(tiny_spec("digits-queued"))
    assert client.cancel(job_id) == "canceled"
    assert client.status(job_id).status == "canceled"
    with pytest.raises(client.CannotCancel):
        client.cancel(job_id)


def test_sigkilled_work_horse_is_requeued_and_resumes_from_its_checkpoint(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    worker = start_worker()
    job_id = client.submit(tiny_spec("digits-horse", **LONG))
    wait_for(
        lambda: (
            (models_dir / ".checkpoints" / job_id / "checkpoint.json").exists()
            and _progress_step(job_id) >= 25
        ),
        timeout=JOB_LIMIT_S,
        what="a checkpoint",
    )
    horse = client.status(job_id).worker
    assert horse is not None
    os.kill(horse["pid"], signal.SIGKILL)

    info = client.poll(job_id, timeout=JOB_LIMIT_S)
    assert info.status == "finished"
    assert info.attempts == 2
    assert "work horse died (signal 9 (SIGKILL))" in info.previous_errors[0]
    assert info.result and info.result["resumed"] is True
    assert ModelRepository(models_dir).versions("digits-horse") == [1]
    assert worker.poll() is None


def test_sigkilled_worker_job_is_requeued_by_another_worker_and_resumes(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    first = start_worker("doomed")
    job_id = client.submit(tiny_spec("digits-worker", **LONG))
    wait_for(
        lambda: (
            (models_dir / ".checkpoints" / job_id / "checkpoint.json").exists()
            and _progress_step(job_id) >= 25
        ),
        timeout=JOB_LIMIT_S,
        what="a checkpoint",
    )
    horse_pid = client.status(job_id).worker["pid"]  # type: ignore[index]
    start_worker("rescuer")

    first.signal_group(signal.SIGKILL)  # the worker; its horse is in its own process group
    wait_for(lambda: not _alive(horse_pid), timeout=EVENT_LIMIT_S, what="the orphaned horse to die")

    info = client.poll(job_id, timeout=JOB_LIMIT_S)
    assert info.status == "finished"
    assert info.attempts == 2
    assert info.previous_errors and info.previous_errors[0].startswith("abandoned")
    assert info.result and info.result["resumed"] is True
    assert info.worker and info.worker["name"].startswith("rescuer")
    assert _only_versions(models_dir, "digits-worker") == ["1"]


def test_worker_reconnects_after_redis_restarts_mid_job(
    start_worker, client_env: dict[str, str], models_dir: Path, redis_server: RedisServer
) -> None:
    worker = start_worker()
    job_id = client.submit(tiny_spec("digits-redis", **LONG))
    wait_for(lambda: _progress_step(job_id) >= 5, timeout=JOB_LIMIT_S, what="training progress")

    redis_server.restart(down_for=2.0)  # no persistence: every key is gone

    repo = ModelRepository(models_dir)
    wait_for(lambda: repo.versions("digits-redis") == [1], timeout=JOB_LIMIT_S, what="version 1")
    info = client.poll(job_id, timeout=EVENT_LIMIT_S)  # the horse wrote the job back
    assert info.status == "finished" and info.result and info.result["version"] == 1

    after = client.poll(client.submit(tiny_spec("digits-redis")), timeout=JOB_LIMIT_S)
    assert after.status == "finished" and after.result and after.result["version"] == 2
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
