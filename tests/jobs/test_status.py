"""`jobs.status`: RQ's nine status words map onto the five every caller sees."""

from __future__ import annotations

import pytest

from jobs.status import TERMINAL, JobStatus, RqStatus, from_rq


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("created", JobStatus.QUEUED),
        ("queued", JobStatus.QUEUED),
        ("deferred", JobStatus.QUEUED),
        ("scheduled", JobStatus.QUEUED),
        ("started", JobStatus.RUNNING),
        ("finished", JobStatus.FINISHED),
        ("failed", JobStatus.FAILED),
        ("stopped", JobStatus.CANCELLED),
        ("canceled", JobStatus.CANCELLED),
    ],
)
def test_every_rq_word_has_one_status(raw: str, expected: JobStatus) -> None:
    assert from_rq(raw) is expected
    assert from_rq(raw.encode()) is expected  # as redis-py returns it


def test_every_rq_status_is_mapped() -> None:
    for word in RqStatus:
        from_rq(word.value)


def test_an_unknown_word_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown RQ job status 'exploded'.*started"):
        from_rq("exploded")


def test_words_callers_print() -> None:
    assert [s.value for s in JobStatus] == [
        "queued",
        "running",
        "finished",
        "failed",
        "cancelled",
    ]


def test_terminal_statuses() -> None:
    assert {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED} == TERMINAL
