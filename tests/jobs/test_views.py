"""`jobs.views`: frozen job views and their JSON form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobs.status import JobStatus
from jobs.views import EpochSnapshot, JobView, Phase, Progress


def _snapshot(epoch: int) -> EpochSnapshot:
    return EpochSnapshot(
        epoch=epoch,
        epochs=3,
        step=10 * epoch,
        total_steps=30,
        at=1_700_000_000.0 + epoch,
        loss=0.5,
        train_accuracy=0.8,
        val_accuracy=0.75,
    )


def _view(**changes: object) -> JobView:
    base = JobView(
        id="abc",
        status=JobStatus.RUNNING,
        model="digits",
        queue="training",
        stage="training",
        progress=Progress(epoch=2, epochs=3, step=15, total_steps=30, loss=0.4),
        epochs=(_snapshot(1),),
        attempts=1,
        enqueued_at=1_700_000_000.0,
        started_at=1_700_000_001.0,
        spec={"name": "digits", "epochs": 3},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_views_are_frozen() -> None:
    view = _view()
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.status = JobStatus.FAILED  # type: ignore[misc]


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (JobStatus.QUEUED, False),
        (JobStatus.RUNNING, False),
        (JobStatus.FINISHED, True),
        (JobStatus.FAILED, True),
        (JobStatus.CANCELLED, True),
    ],
)
def test_terminal(status: JobStatus, terminal: bool) -> None:
    assert _view(status=status).terminal is terminal


def test_as_dict_is_json_with_words() -> None:
    data = json.loads(json.dumps(_view(metrics={"test_accuracy": 0.9}).as_dict()))
    assert data["status"] == "running"
    assert data["progress"]["phase"] == "training"
    assert data["progress"]["step"] == 15
    assert data["epochs"][0]["epoch"] == 1
    assert data["epochs"][0]["at"] == 1_700_000_001.0
    assert data["metrics"] == {"test_accuracy": 0.9}
    assert data["spec"] == {"name": "digits", "epochs": 3}


def test_as_dict_of_a_queued_job() -> None:
    data = JobView(id="q1", status=JobStatus.QUEUED).as_dict()
    assert data["progress"] is None
    assert data["epochs"] == []
    assert data["spec"] is None
    assert data["model_version"] is None


def test_an_epoch_snapshot_is_shown_as_evaluating_progress() -> None:
    progress = _snapshot(2).as_progress()
    assert progress.phase is Phase.EVALUATING
    assert (progress.epoch, progress.step, progress.val_accuracy) == (2, 20, 0.75)
    assert progress.updated_at == 1_700_000_002.0


def test_equal_views_compare_equal() -> None:
    # The follower emits only changes: equality must be by value.
    assert _view() == _view()
    assert _view() != _view(stage="publishing")
