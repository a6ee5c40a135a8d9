"""Training jobs end to end: submit and follow, version numbering, concurrent workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.artifacts import load_artifact
from core.repository import ModelRepository
from jobs.queue import JobQueue
from jobs.spec import parse_spec
from jobs.status import JobStatus
from tests.support.polling import wait_for
from tests.support.workers import wait_until_ended
from tests.worker.helpers import job_record, tiny_spec

pytestmark = pytest.mark.integration


def test_submit_and_follow_publishes_version_1_then_version_2(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    start_worker()
    job_id = job_queue.submit(tiny_spec("digits-e2e"))
    views = list(job_queue.follow(job_id, poll_interval_s=0.1))
    assert views[0].status in {JobStatus.QUEUED, JobStatus.RUNNING}
    assert views[-1].status is JobStatus.FINISHED
    assert views[-1].model_version == 1

    repo = ModelRepository(models_dir)
    assert repo.versions("digits-e2e") == [1]
    assert load_artifact(repo.path("digits-e2e", 1)).meta.job_id == job_id

    second = wait_until_ended(job_queue, job_queue.submit(tiny_spec("digits-e2e")), 120)
    assert second.model_version == 2
    assert repo.versions("digits-e2e") == [1, 2]
    assert not (models_dir / ".checkpoints" / job_id).exists()
    assert [v.id for v in job_queue.list()] == [second.id, job_id]


def test_two_workers_two_jobs_same_name_get_distinct_versions(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    start_worker("a")
    start_worker("b")
    spec = tiny_spec("digits-race", epochs=2)
    ids = [job_queue.submit(spec), job_queue.submit(spec)]

    # Both must be running at the same time for the race to be real.
    wait_for(
        lambda: all(job_queue.get(i).status is JobStatus.RUNNING for i in ids),
        timeout=60,
        what="both jobs started",
    )
    views = [wait_until_ended(job_queue, i, 180) for i in ids]

    assert [v.status for v in views] == [JobStatus.FINISHED, JobStatus.FINISHED]
    workers = {job_record(job_queue, i)["worker"]["name"] for i in ids}
    assert len(workers) == 2
    assert sorted(v.model_version or 0 for v in views) == [1, 2]
    assert ModelRepository(models_dir).versions("digits-race") == [1, 2]


def test_a_finished_job_reports_each_epoch_and_the_submitted_spec(
    start_worker, job_queue: JobQueue
) -> None:
    start_worker()
    spec = tiny_spec("digits-epochs", epochs=3)
    view = wait_until_ended(job_queue, job_queue.submit(spec), 120)
    assert view.status is JobStatus.FINISHED
    assert [e.epoch for e in view.epochs] == [1, 2, 3]
    assert all(
        e.train_accuracy is not None and 0.0 <= e.train_accuracy <= 1.0 and e.epochs == 3
        for e in view.epochs
    )
    assert view.epochs[-1].step == view.epochs[-1].total_steps
    assert view.spec == parse_spec(spec).payload()  # the validated spec, defaults filled in
    assert view.stage == "finished" and view.metrics and view.error is None


def test_following_replays_every_epoch_once_then_the_end(start_worker, job_queue: JobQueue) -> None:
    start_worker()
    job_id = job_queue.submit(tiny_spec("digits-follow", epochs=3))
    wait_until_ended(job_queue, job_id, 120)
    views = list(job_queue.follow(job_id))  # a follower that joins after the end
    epoch_ends = [
        v.progress.epoch for v in views if v.progress and v.progress.phase == "evaluating"
    ]
    assert epoch_ends[:3] == [1, 2, 3]
    assert views[-1].status is JobStatus.FINISHED
