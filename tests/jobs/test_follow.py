"""`jobs.follow`: what a follower emits and how it rides out outages (no clocks, no sleeps)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator

import pytest

from jobs.errors import JobNotFound, QueueUnavailable
from jobs.follow import Follower, afollow, follow
from jobs.status import JobStatus
from jobs.views import EpochSnapshot, JobView, Phase, Progress


def _snapshot(epoch: int) -> EpochSnapshot:
    return EpochSnapshot(
        epoch=epoch, epochs=3, step=10 * epoch, total_steps=30, at=100.0 + epoch, loss=1 / epoch
    )


def _running(step: int, epochs: int = 0) -> JobView:
    return JobView(
        id="j",
        status=JobStatus.RUNNING,
        stage="training",
        progress=Progress(epoch=epochs + 1, epochs=3, step=step, total_steps=30, updated_at=step),
        epochs=tuple(_snapshot(e) for e in range(1, epochs + 1)),
    )


def _finished() -> JobView:
    return JobView(
        id="j",
        status=JobStatus.FINISHED,
        stage="finished",
        progress=_snapshot(3).as_progress(),
        epochs=tuple(_snapshot(e) for e in (1, 2, 3)),
        model_version=4,
        metrics={"test_accuracy": 0.9},
    )


def test_only_changes_are_emitted() -> None:
    follower = Follower()
    queued = JobView(id="j", status=JobStatus.QUEUED)
    assert follower.observe(queued) == [queued]
    assert follower.observe(queued) == []
    assert follower.observe(_running(3)) == [_running(3)]
    assert follower.observe(_running(3)) == []
    assert not follower.done


def test_finished_epochs_are_replayed_oldest_first_before_the_current_state() -> None:
    follower = Follower()
    emitted = follower.observe(_running(25, epochs=2))
    assert [v.progress.epoch for v in emitted if v.progress] == [1, 2, 3]
    replayed = emitted[:2]
    assert all(v.status is JobStatus.RUNNING for v in replayed)
    assert all(v.progress and v.progress.phase is Phase.EVALUATING for v in replayed)
    assert [len(v.epochs) for v in replayed] == [1, 2]
    assert emitted[2] == _running(25, epochs=2)


def test_a_late_follower_of_an_ended_job_sees_every_epoch_then_the_end() -> None:
    follower = Follower()
    emitted = follower.observe(_finished())
    # Epochs 1 and 2 as they ended; epoch 3's end reads as running, then the result.
    assert [v.status for v in emitted] == [
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.FINISHED,
    ]
    assert emitted[2].model_version is None and emitted[-1].model_version == 4
    assert follower.done


def test_an_epoch_end_that_is_the_current_state_is_emitted_once() -> None:
    follower = Follower()
    follower.observe(_running(5))
    at_end = dataclasses.replace(
        _running(10, epochs=1), progress=_snapshot(1).as_progress(), stage="training"
    )
    emitted = follower.observe(at_end)
    assert len(emitted) == 1
    assert emitted[0].progress == _snapshot(1).as_progress()


def test_epochs_already_emitted_are_not_replayed_again() -> None:
    follower = Follower()
    follower.observe(_running(12, epochs=1))
    emitted = follower.observe(_running(14, epochs=1))
    assert emitted == [_running(14, epochs=1)]


def test_an_outage_backs_off_then_gives_up_with_the_error() -> None:
    follower = Follower(poll_interval_s=0.5, outage_limit_s=10.0, max_backoff_s=2.0)
    follower.observe(_running(1))
    down = QueueUnavailable("job queue (Redis at redis://h:6379/0) unreachable")
    assert [follower.failed(down, now) for now in (0.0, 0.5, 1.5, 3.5, 5.5)] == [
        0.5,  # the poll interval, then doubling...
        1.0,
        2.0,
        2.0,  # ...up to max_backoff_s
        2.0,
    ]
    with pytest.raises(QueueUnavailable):
        follower.failed(down, 10.0)


def test_a_successful_poll_ends_the_outage() -> None:
    follower = Follower(poll_interval_s=0.5, outage_limit_s=10.0)
    down = QueueUnavailable("down")
    follower.failed(down, 0.0)
    follower.failed(down, 9.0)
    follower.observe(_running(2))
    assert follower.failed(down, 50.0) == 0.5  # a new outage, its own limit


def test_an_unknown_job_is_reported_at_once() -> None:
    with pytest.raises(JobNotFound):
        Follower().failed(JobNotFound("nope"), 0.0)


def test_a_job_lost_after_it_was_seen_is_ridden_out() -> None:
    follower = Follower(poll_interval_s=0.5, outage_limit_s=5.0)
    follower.observe(_running(1))
    assert follower.failed(JobNotFound("j"), 0.0) == 0.5
    with pytest.raises(JobNotFound):
        follower.failed(JobNotFound("j"), 5.0)


def _polls(*results: JobView | BaseException) -> Callable[[], JobView]:
    queue: Iterator[JobView | BaseException] = iter(results)

    def get() -> JobView:
        result = next(queue)
        if isinstance(result, BaseException):
            raise result
        return result

    return get


def test_follow_polls_until_the_end_pausing_between_polls() -> None:
    pauses: list[float] = []
    ticks = iter(range(100))
    views = list(
        follow(
            _polls(
                JobView(id="j", status=JobStatus.QUEUED),
                QueueUnavailable("down"),
                _running(4),
                _running(4),
                JobView(id="j", status=JobStatus.CANCELLED),
            ),
            poll_interval_s=0.25,
            sleep=pauses.append,
            clock=lambda: float(next(ticks)),
        )
    )
    assert [v.status for v in views] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.CANCELLED,
    ]
    assert pauses == [0.25, 0.25, 0.25, 0.25]  # after a poll, after the failure, after two


def test_follow_accepts_the_callers_transient_errors() -> None:
    class Unavailable(Exception):
        pass

    views = list(
        follow(
            _polls(Unavailable(), _finished()),
            transient=(Unavailable,),
            sleep=lambda _s: None,
        )
    )
    assert views[-1].status is JobStatus.FINISHED


def test_afollow_awaits_between_polls() -> None:
    get = _polls(JobView(id="j", status=JobStatus.QUEUED), QueueUnavailable("down"), _finished())

    async def poll() -> JobView:
        return get()

    async def collect() -> list[JobView]:
        return [view async for view in afollow(poll, poll_interval_s=0.001)]

    views = asyncio.run(collect())
    assert views[0].status is JobStatus.QUEUED
    assert views[-1].status is JobStatus.FINISHED
