"""Progress reporting: throttled, never lost at epoch ends, survives a Redis that lost the job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from core.training import Progress
from jobs.views import EpochSnapshot
from tests.support.redis_server import RedisServer
from worker.progress import JobMetaWriter, ProgressReporter


class RecordingWriter:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def update(self, fields: Mapping[str, Any]) -> bool:
        self.updates.append(dict(fields))
        return True


def progress(step: int, epoch: int = 1, phase: str = "train", total: int = 100) -> Progress:
    return Progress(
        epoch=epoch,
        epochs=2,
        step=step,
        total_steps=total,
        loss=0.5,
        train_accuracy=0.8,
        val_accuracy=None,
        images_per_s=100.0,
        eta_s=3.0,
        phase=phase,
    )


def test_reporter_throttles_steps_but_keeps_epoch_ends_and_the_last_step() -> None:
    clock = [0.0]
    writer = RecordingWriter()
    reporter = ProgressReporter(writer, min_interval=0.5, clock=lambda: clock[0])
    for step in range(1, 51):  # 50 steps in 1 s: at most ~3 timed writes
        clock[0] = step * 0.02
        reporter(progress(step))
    reporter(progress(50, phase="epoch_end"))
    for step in range(51, 101):
        clock[0] = 1.0 + (step - 50) * 0.001
        reporter(progress(step, epoch=2))
    steps = [u["progress"]["step"] for u in writer.updates]
    phases = [u["progress"]["phase"] for u in writer.updates]
    assert len(writer.updates) <= 8
    assert "evaluating" in phases
    assert steps[-1] == 100
    assert reporter.first_step_at == pytest.approx(0.02)


def test_every_epoch_end_is_appended_to_the_epoch_list() -> None:
    writer = RecordingWriter()
    reporter = ProgressReporter(writer, min_interval=60.0, clock=lambda: 0.0)
    for epoch in (1, 2):
        for step in range(1, 4):  # throttled away except the first and the epoch's changes
            reporter(progress(3 * (epoch - 1) + step, epoch=epoch, total=6))
        reporter(progress(3 * epoch, epoch=epoch, phase="epoch_end", total=6))
    lists = [u["epochs"] for u in writer.updates if "epochs" in u]
    assert len(lists) == 2  # written with each epoch end, not with every step
    assert [e["epoch"] for e in lists[-1]] == [1, 2]
    assert lists[-1][1] == {**lists[-1][1], "step": 6, "loss": 0.5, "val_accuracy": None}
    assert isinstance(lists[-1][1]["at"], float)


def test_a_rerun_epoch_replaces_its_snapshot_and_the_list_is_bounded() -> None:
    earlier = [  # a previous attempt's epochs
        EpochSnapshot(epoch=e, epochs=5, step=10 * e, total_steps=50, at=0.0, loss=9.0)
        for e in (1, 2, 3)
    ]
    writer = RecordingWriter()
    reporter = ProgressReporter(writer, epochs=earlier, max_epochs=3)
    reporter(progress(20, epoch=2, phase="epoch_end"))  # resumed from the epoch-1 checkpoint
    assert [(e["epoch"], e["loss"]) for e in writer.updates[-1]["epochs"]] == [(1, 9.0), (2, 0.5)]
    for epoch in (3, 4, 5):
        reporter(progress(10 * epoch, epoch=epoch, phase="epoch_end"))
    assert [e["epoch"] for e in writer.updates[-1]["epochs"]] == [3, 4, 5]


def test_progress_is_json_safe() -> None:
    writer = RecordingWriter()
    reporter = ProgressReporter(writer)
    p = Progress(
        epoch=1,
        epochs=1,
        step=1,
        total_steps=1,
        loss=float("nan"),
        train_accuracy=1.0,
        val_accuracy=None,
        images_per_s=float("inf"),
        eta_s=0.0,
        phase="train",
    )
    reporter(p)
    data = writer.updates[0]["progress"]
    assert data["loss"] is None and data["images_per_s"] is None


@pytest.mark.integration
def test_writer_restores_a_job_hash_lost_by_redis(
    redis_server: RedisServer, redis_url: str
) -> None:
    connection = redis_server.client()
    queue = Queue("training", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("worker.jobs.train_job", {"x": 1}, meta={"kind": "train"})
    writer = JobMetaWriter(job)
    assert writer.update({"stage": "training"})
    connection.delete(job.key)  # what a Redis restart without persistence does
    assert writer.update({"stage": "still training"})
    again = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
    assert again.meta["stage"] == "still training"
    assert list(again.args) == [{"x": 1}]


def test_the_first_write_says_training_has_started() -> None:
    writer = RecordingWriter()
    reporter = ProgressReporter(writer, min_interval=0.0)
    reporter(progress(1))
    reporter(progress(2))
    assert [u.get("stage") for u in writer.updates] == ["training", None]
