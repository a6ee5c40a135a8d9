"""The spec's ``tensorboard`` option and the event-file directory contract (`jobs.tensorboard`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.proto_codec import decode_job, encode_job
from jobs.spec import InvalidSpec, TensorBoardOptions, parse_spec
from jobs.status import JobStatus
from jobs.tensorboard import local_path, log_dir
from jobs.views import JobView
from tests.worker.helpers import tiny_spec


def test_a_spec_without_the_option_writes_no_event_files() -> None:
    assert parse_spec(tiny_spec()).tensorboard is None
    assert parse_spec(tiny_spec(tensorboard=False)).tensorboard is None
    assert parse_spec(tiny_spec(tensorboard=None)).tensorboard is None


def test_true_is_every_default() -> None:
    options = parse_spec(tiny_spec(tensorboard=True)).tensorboard
    assert options == TensorBoardOptions()
    assert (options.scalars_every, options.histograms_every, options.images_every) == (1, 1, 1)


def test_an_object_sets_each_rate_and_survives_the_payload() -> None:
    spec = parse_spec(tiny_spec(tensorboard={"scalars_every": 10, "images_every": 0}))
    assert spec.tensorboard == TensorBoardOptions(scalars_every=10, images_every=0)
    assert parse_spec(spec.payload()) == spec
    assert spec.payload()["tensorboard"] == {
        "scalars_every": 10,
        "histograms_every": 1,
        "images_every": 0,
    }


def test_the_option_is_not_part_of_the_training_config() -> None:
    # a retried job may turn event files on without invalidating its checkpoint
    spec = parse_spec(tiny_spec(tensorboard=True))
    assert spec.train_config() == parse_spec(tiny_spec()).train_config()


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ({"scalars_every": 0}, "tensorboard.scalars_every", "greater than or equal to 1"),
        ({"histograms_every": -1}, "tensorboard.histograms_every", "greater than or equal to 0"),
        ({"images_every": 10_001}, "tensorboard.images_every", "less than or equal to 10000"),
        ({"scalars_every": "often"}, "tensorboard.scalars_every", "integer"),
        ({"histograms": True}, "tensorboard.histograms", "unknown field"),
        ("yes", "tensorboard", "dictionary"),
        (1, "tensorboard", "dictionary"),
    ],
)
def test_bad_options_are_refused_naming_the_field(value: object, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(tensorboard=value))
    assert any(e.startswith(f"{field}: ") and words in e for e in info.value.errors), info.value


def test_a_job_writes_under_tensorboard_in_the_data_volume(tmp_path: Path) -> None:
    job_id = "0f6e1c1e-0000-4000-8000-000000000001"
    assert log_dir(job_id) == f"tensorboard/{job_id}"
    assert local_path(tmp_path, log_dir(job_id)) == tmp_path / "tensorboard" / job_id


@pytest.mark.parametrize("job_id", ["../x", "a/b", "..", ".", "", "x" * 129, "/etc"])
def test_a_job_id_that_is_no_plain_name_names_no_directory(job_id: str) -> None:
    with pytest.raises(ValueError, match="cannot name an event-file directory"):
        log_dir(job_id)


def test_the_directory_crosses_the_wire_and_its_absence_too() -> None:
    view = JobView(id="j", status=JobStatus.RUNNING, tensorboard_dir="tensorboard/j")
    assert encode_job(view).tensorboard_dir == "tensorboard/j"
    assert decode_job(encode_job(view)) == view
    assert decode_job(encode_job(JobView(id="j", status=JobStatus.QUEUED))).tensorboard_dir is None
