"""Submits with a request id (`jobs.request_ids`) against a real Redis: a repeated request
queues one job, however the repeats interleave; another spec under the key is refused; keys
expire."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from jobs import rq_layout
from jobs.errors import InvalidRequestId, RequestIdReused
from jobs.queue import JobQueue, Submission
from jobs.request_ids import REQUEST_KEY_PREFIX
from jobs.settings import QueueSettings
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for
from tests.support.reply_cutter import ReplyCutter
from tests.worker.helpers import tiny_spec


def _queued(queue: JobQueue) -> list[str]:
    waiting = queue._redis.lrange(rq_layout.queue_key(queue.settings.queue), 0, -1)
    return [job_id.decode() for job_id in waiting]


def _request_keys(queue: JobQueue) -> list[bytes]:
    return list(queue._redis.scan_iter(f"{REQUEST_KEY_PREFIX}*"))


def test_the_same_request_twice_queues_one_job(queue: JobQueue) -> None:
    first = queue.submission(tiny_spec("once"), request_id="req-1")
    # The same spec as other JSON text (key order, spacing) is the same request.
    again = queue.submission(json.dumps(tiny_spec("once"), indent=2), request_id="req-1")
    assert first == Submission(first.job_id, duplicate=False)
    assert again == Submission(first.job_id, duplicate=True)
    assert _queued(queue) == [first.job_id]


def test_concurrent_submits_with_one_request_id_queue_one_job(queue: JobQueue) -> None:
    threads = 8
    start = threading.Barrier(threads)

    def submit(_: int) -> Submission:
        start.wait()
        return queue.submission(tiny_spec("raced"), request_id="req-raced")

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(submit, range(threads)))
    assert len({r.job_id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * (threads - 1)
    assert _queued(queue) == [results[0].job_id]


def test_another_spec_under_a_used_request_id_is_refused(queue: JobQueue) -> None:
    job_id = queue.submit(tiny_spec("first"), request_id="req-2")
    with pytest.raises(RequestIdReused, match="request_id 'req-2'") as refused:
        queue.submit(tiny_spec("first", epochs=2), request_id="req-2")
    assert job_id in str(refused.value) and "different spec" in str(refused.value)
    assert _queued(queue) == [job_id]


def test_request_ids_of_other_callers_and_submits_without_one_do_not_meet(
    queue: JobQueue,
) -> None:
    mine = queue.submit(tiny_spec(), request_id="req-3", caller="CN=a")
    theirs = queue.submit(tiny_spec(), request_id="req-3", caller="CN=b")
    plain = [queue.submit(tiny_spec()), queue.submit(tiny_spec())]
    assert len({mine, theirs, *plain}) == 4
    assert queue.submit(tiny_spec(), request_id="req-3", caller="CN=a") == mine


def test_a_request_id_expires_after_its_ttl(queue_settings: QueueSettings) -> None:
    settings = queue_settings.model_copy(update={"request_id_ttl_s": 1})
    with JobQueue.connect(settings) as queue:
        first = queue.submit(tiny_spec("expiring"), request_id="req-4")
        wait_for(lambda: not _request_keys(queue), EVENT_LIMIT_S, what="the key to expire")
        second = queue.submission(tiny_spec("expiring"), request_id="req-4")
        assert second.job_id != first and not second.duplicate
        assert _queued(queue) == [first, second.job_id]


@pytest.mark.parametrize("request_id", ["", "has space", "-leading-dash", "x" * 129, "a/b"])
def test_a_malformed_request_id_is_refused_and_queues_nothing(
    queue: JobQueue, request_id: str
) -> None:
    with pytest.raises(InvalidRequestId, match=r"request_id .* is malformed: expected 1-128"):
        queue.submit(tiny_spec(), request_id=request_id)
    assert queue._redis.dbsize() == 0


@pytest.mark.parametrize("request_id", [None, "req-cut"])
def test_an_enqueue_whose_answer_is_lost_is_not_queued_again(
    queue_settings: QueueSettings, redis_url: str, request_id: str | None
) -> None:
    """The connection breaks after Redis ran the transaction and before its answer arrived:
    redis-py reports that as a WatchError, and the submit must not take it for a lost race."""
    direct = redis.Redis.from_url(redis_url)
    waiting = rq_layout.queue_key(queue_settings.queue)
    port = direct.connection_pool.connection_kwargs["port"]
    with ReplyCutter(port, lambda: bool(direct.llen(waiting))) as cutter:
        url = f"redis://127.0.0.1:{cutter.port}/0"
        with JobQueue.connect(queue_settings.model_copy(update={"redis_url": url})) as queue:
            job_id = queue.submit(tiny_spec("cut"), request_id=request_id)
        assert cutter.cut.is_set()
    assert [queued.decode() for queued in direct.lrange(waiting, 0, -1)] == [job_id]
    direct.close()
