"""`jobs.proto_codec`: a job view survives the wire, and what the wire cannot carry is explicit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.proto_codec import (
    decode_job,
    decode_status,
    encode_job,
    encode_status,
    wire_view,
)
from jobs.status import JobStatus
from jobs.views import EpochSnapshot, JobView, Phase, Progress
from proto.cnn.v1 import training_pb2 as pb

PROGRESS = Progress(
    epoch=2,
    epochs=3,
    step=20,
    total_steps=30,
    loss=0.41,
    train_accuracy=0.87,
    val_accuracy=0.86,
    images_per_s=1234.0,
    eta_s=12.0,
    phase=Phase.EVALUATING,
)

FINISHED = JobView(
    id="0f6e1c1e-0000-4000-8000-000000000001",
    status=JobStatus.FINISHED,
    model="digits",
    progress=PROGRESS,
    model_version=3,
    metrics={"test_accuracy": 0.91, "val_accuracy": 0.9},
    enqueued_at=1767225600.0,
    started_at=1767225601.5,
    ended_at=1767225660.25,
    spec={"name": "digits", "epochs": 3},
)


def test_a_view_the_wire_can_carry_round_trips_exactly() -> None:
    assert decode_job(encode_job(FINISHED)) == FINISHED


def test_a_message_round_trips_byte_for_byte() -> None:
    message = encode_job(FINISHED)
    again = encode_job(decode_job(message))
    assert again.SerializeToString(deterministic=True) == message.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (JobStatus.QUEUED, pb.JOB_STATUS_QUEUED),
        (JobStatus.RUNNING, pb.JOB_STATUS_RUNNING),
        (JobStatus.FINISHED, pb.JOB_STATUS_FINISHED),
        (JobStatus.FAILED, pb.JOB_STATUS_FAILED),
        (JobStatus.CANCELLED, pb.JOB_STATUS_CANCELLED),
    ],
)
def test_every_status_has_its_wire_value(status: JobStatus, wire: int) -> None:
    assert encode_status(status) == wire
    assert decode_status(wire) is status


@pytest.mark.parametrize("value", [pb.JOB_STATUS_UNSPECIFIED, 99])
def test_an_unspecified_or_unknown_wire_status_is_refused_naming_it(value: int) -> None:
    with pytest.raises(ValueError, match=f"status: {value} is not a job status"):
        decode_status(value)


def test_what_the_wire_does_not_carry_decodes_to_the_defaults() -> None:
    snapshot = EpochSnapshot(epoch=1, epochs=3, step=10, total_steps=30, at=1767225630.0)
    rich = JobView(
        id="j",
        status=JobStatus.RUNNING,
        queue="training",
        stage="training",
        progress=Progress(epoch=1, epochs=3, step=10, total_steps=30, val_loss=0.5, lr=0.01,
                          updated_at=1767225631.0),
        epochs=(snapshot,),
        attempts=2,
    )  # fmt: skip
    seen = wire_view(rich)
    assert (seen.queue, seen.stage, seen.epochs, seen.attempts) == (None, None, (), 0)
    assert seen.progress is not None
    assert (seen.progress.val_loss, seen.progress.lr, seen.progress.updated_at) == (None,) * 3


def test_unset_scalars_travel_as_zero_and_come_back_as_none() -> None:
    queued = JobView(id="j", status=JobStatus.QUEUED)
    message = encode_job(queued)
    assert (message.model_name, message.error, message.model_version) == ("", "", 0)
    assert (message.enqueued_at, message.spec_json, message.HasField("progress")) == (0, "", False)
    assert decode_job(message) == queued


def test_unreported_progress_figures_are_zero_but_val_accuracy_stays_unset() -> None:
    early = Progress(epoch=1, epochs=2, step=0, total_steps=8, phase=Phase.LOADING)
    message = encode_job(JobView(id="j", status=JobStatus.RUNNING, progress=early)).progress
    assert (message.loss, message.images_per_s, message.phase) == (0.0, 0.0, "loading")
    assert not message.HasField("val_accuracy")
    decoded = decode_job(encode_job(JobView(id="j", status=JobStatus.RUNNING, progress=early)))
    assert decoded.progress is not None and decoded.progress.val_accuracy is None


def test_an_unknown_phase_or_a_garbled_spec_does_not_break_decoding() -> None:
    message = encode_job(FINISHED)
    message.progress.phase = "warming-up"
    message.spec_json = "{not json"
    view = decode_job(message)
    assert view.progress is not None and view.progress.phase is Phase.TRAINING
    assert view.spec is None


_finite = st.floats(min_value=0.0, max_value=1e9, allow_nan=False).filter(lambda x: x != 0.0)
_text = st.text(min_size=1, max_size=20)
_progress = st.builds(
    Progress,
    epoch=st.integers(0, 10_000),
    epochs=st.integers(0, 10_000),
    step=st.integers(0, 2**40),
    total_steps=st.integers(0, 2**40),
    loss=_finite,
    train_accuracy=_finite,
    val_accuracy=st.none() | st.floats(min_value=0.0, max_value=1.0),
    images_per_s=_finite,
    eta_s=_finite,
    phase=st.sampled_from(Phase),
)
_views = st.builds(
    JobView,
    id=_text,
    status=st.sampled_from(JobStatus),
    model=st.none() | _text,
    progress=st.none() | _progress,
    error=st.none() | _text,
    model_version=st.none() | st.integers(1, 2**40),
    metrics=st.dictionaries(_text, st.floats(allow_nan=False, allow_infinity=False)),
    enqueued_at=st.none() | _finite,
    started_at=st.none() | _finite,
    ended_at=st.none() | _finite,
    spec=st.none() | st.dictionaries(_text, st.integers() | _text, max_size=4),
)


@given(_views)
def test_any_view_of_wire_fields_round_trips(view: JobView) -> None:
    again = decode_job(encode_job(view))
    assert again == view
    assert all(not math.isnan(v) for v in again.metrics.values())
