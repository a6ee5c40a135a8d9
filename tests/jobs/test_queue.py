"""`jobs.queue.JobQueue` against a real Redis (no worker: statuses are set as RQ sets them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import rq_layout
from jobs.errors import InvalidSpec, JobAlreadyEnded, JobNotFound, QueueUnavailable
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from jobs.status import JobStatus, RqStatus
from tests.support.ports import free_port
from tests.worker.helpers import tiny_spec


def _set_status(queue: JobQueue, job_id: str, status: RqStatus) -> None:
    queue._redis.hset(rq_layout.job_key(job_id), "status", status.value)


def test_submit_accepts_a_spec_as_object_json_text_or_file(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec("from-file")))
    ids = [
        queue.submit(tiny_spec("from-dict")),
        queue.submit(json.dumps(tiny_spec("from-text"))),
        queue.submit(path),
    ]
    assert [queue.get(i).model for i in ids] == ["from-dict", "from-text", "from-file"]
    assert all(queue.get(i).status is JobStatus.QUEUED for i in ids)


def test_an_invalid_spec_enqueues_nothing(queue: JobQueue) -> None:
    with pytest.raises(InvalidSpec, match="epochs"):
        queue.submit(tiny_spec(epochs=0))
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        queue.submit("{")
    assert queue._redis.dbsize() == 0


def test_a_queued_job_view(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec("viewed"))
    view = queue.get(job_id)
    assert view.id == job_id
    assert (view.model, view.queue, view.stage) == ("viewed", "training", "queued")
    assert view.progress is None and view.epochs == () and view.error is None
    assert view.enqueued_at is not None and view.started_at is None
    assert view.spec is not None and view.spec["name"] == "viewed"


def test_an_unknown_job_is_not_found(queue: JobQueue) -> None:
    with pytest.raises(JobNotFound, match="'nope' not found"):
        queue.get("nope")
    with pytest.raises(JobNotFound):
        queue.cancel("nope")


def test_list_is_newest_first_filtered_and_limited(queue: JobQueue) -> None:
    ids = [queue.submit(tiny_spec(f"m{i}")) for i in range(4)]
    _set_status(queue, ids[1], RqStatus.STARTED)
    assert [v.id for v in queue.list()] == ids[::-1]
    assert [v.id for v in queue.list(limit=2)] == ids[:1:-1]
    assert [v.id for v in queue.list(status=JobStatus.RUNNING)] == [ids[1]]
    assert queue.list(status=JobStatus.FAILED) == []


def test_list_drops_jobs_whose_record_expired(queue: JobQueue) -> None:
    kept, expired = queue.submit(tiny_spec("kept")), queue.submit(tiny_spec("gone"))
    queue._redis.delete(rq_layout.job_key(expired))
    assert [v.id for v in queue.list()] == [kept]
    assert queue._redis.zrange(rq_layout.index_key("training"), 0, -1) == [kept.encode()]


def test_list_covers_every_configured_queue(queue_settings: QueueSettings) -> None:
    first = JobQueue.connect(queue_settings.model_copy(update={"queues": ("a", "b")}))
    second = JobQueue.connect(queue_settings.model_copy(update={"queues": ("b", "a")}))
    with first, second:
        on_a, on_b = first.submit(tiny_spec()), second.submit(tiny_spec())
        assert [v.id for v in first.list()] == [on_b, on_a]
        assert [v.queue for v in first.list()] == ["b", "a"]


def test_cancel_a_queued_job(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec())
    view = queue.cancel(job_id)
    assert view.status is JobStatus.CANCELLED
    assert view.stage == "cancelled"
    assert queue._redis.lrange(rq_layout.queue_key("training"), 0, -1) == []


@pytest.mark.parametrize("ended", [RqStatus.FINISHED, RqStatus.FAILED, RqStatus.CANCELED])
def test_cancelling_an_ended_job_says_how_it_ended(queue: JobQueue, ended: RqStatus) -> None:
    job_id = queue.submit(tiny_spec())
    _set_status(queue, job_id, ended)
    with pytest.raises(JobAlreadyEnded, match="already ended") as info:
        queue.cancel(job_id)
    assert info.value.status is JobStatus(
        {"finished": "finished", "failed": "failed", "canceled": "cancelled"}[ended.value]
    )


def test_cancelling_twice_reports_the_first_cancel(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec())
    queue.cancel(job_id)
    with pytest.raises(JobAlreadyEnded) as info:
        queue.cancel(job_id)
    assert info.value.status is JobStatus.CANCELLED


def test_follow_a_cancelled_job_ends(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec())
    queue.cancel(job_id)
    views = list(queue.follow(job_id, poll_interval_s=0.01))
    assert [v.status for v in views] == [JobStatus.CANCELLED]


def test_unreachable_redis_is_one_error_naming_the_redacted_url() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    settings = QueueSettings.from_env({}, redis_url=url, redis_timeout_s=0.5)
    with JobQueue.connect(settings) as down:
        for call in (lambda: down.get("x"), lambda: down.submit(tiny_spec()), down.list):
            with pytest.raises(QueueUnavailable) as info:
                call()
            assert "user:***@127.0.0.1" in str(info.value)
            assert "s3cret" not in str(info.value)
