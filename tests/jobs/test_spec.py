"""The training spec: examples are valid, bad specs are rejected naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.spec import TRAIN_FUNCTION, InvalidSpec, TrainSpec, load_spec, parse_spec
from tests.support.workers import REPO_ROOT
from tests.worker.helpers import tiny_spec

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_is_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name


def test_payload_round_trips_through_json() -> None:
    spec = parse_spec(tiny_spec(epochs=3))
    again = parse_spec(json.loads(json.dumps(spec.payload())))
    assert again == spec
    assert again.train_config().epochs == 3


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"architecture": [{"type": "conv3d", "filters": 2}]}, "architecture.0.type", "conv3d"),
        ({"dataset": {"name": "cifar 100"}}, "dataset.name", "digits"),
        ({"epochs": -1}, "epochs", "greater than or equal to 1"),
        ({"surprise": True}, "surprise", "unknown field"),
        ({"augmentation": {"rotate": 5}}, "augmentation.rotate", "unknown field"),
        ({"optimizer": {"type": "rmsprop"}}, "optimizer", "rmsprop"),
        ({"name": "../escape"}, "name", "pattern"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"timeout_s": 0}, "timeout_s", "greater than or equal to 1"),
    ],
)
def test_invalid_spec_names_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(**change))
    assert any(e.startswith(f"{field}: ") and words in e for e in info.value.errors), info.value


def test_unknown_layer_option_is_reported_at_its_index() -> None:
    arch = tiny_spec()["architecture"]
    arch[2] = {"type": "maxpool2d", "size": 2, "strides": 2}
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(architecture=arch))
    assert info.value.errors[0].startswith("architecture.2: ")
    assert "strides" in info.value.errors[0]


def test_incompatible_shapes_are_caught_at_submit_time_for_known_datasets() -> None:
    arch = tiny_spec()["architecture"]
    arch.insert(3, {"type": "conv2d", "filters": 4, "kernel_size": 7})  # 4x4 input after pool
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(architecture=arch))
    message = info.value.errors[0]
    assert message.startswith("architecture.3: ") and "(1, 8, 8)" in message


def test_user_dataset_shapes_are_checked_when_the_job_runs() -> None:
    spec = parse_spec(tiny_spec(dataset={"name": "npz", "path": "mine.npz"}))
    assert spec.input_shape() is None


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(epochs=0, extra=1))
    assert len(info.value.errors) == 2
    assert str(info.value).count("\n") == 2


def test_spec_module_does_not_import_rq() -> None:
    import subprocess
    import sys

    code = "import sys, jobs.spec; sys.exit('rq' in sys.modules or 'redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


def test_train_spec_schema_is_documented() -> None:
    schema = TrainSpec.model_json_schema()
    for key in (
        "name",
        "architecture",
        "dataset",
        "epochs",
        "batch_size",
        "optimizer",
        "schedule",
        "seed",
        "validation_split",
        "early_stopping",
        "augmentation",
    ):
        assert key in schema["properties"], key


def test_train_function_names_the_workers_job_function() -> None:
    import worker.jobs

    module, _, name = TRAIN_FUNCTION.rpartition(".")
    assert module == worker.jobs.__name__
    assert getattr(worker.jobs, name) is worker.jobs.train_job


# --- the input section -----------------------------------------------------------------------


def test_an_input_section_states_the_model_input_and_resize_mode() -> None:
    spec = parse_spec(
        tiny_spec(
            dataset={"name": "cats"},
            input={"channels": 3, "height": 32, "width": 24, "resize": "crop"},
        )
    )
    assert spec.input is not None and spec.input.shape == (3, 32, 24)
    assert spec.input_shape() == (3, 32, 24) and spec.resize() == "crop"


def test_an_input_section_may_leave_out_channels_and_size() -> None:
    spec = parse_spec(tiny_spec(dataset={"name": "cats"}, input={"resize": "crop"}))
    assert spec.input_shape() is None  # the data set's: known once it is looked up
    assert parse_spec(tiny_spec()).resize() == "stretch"


def test_an_input_section_resizes_a_bundled_data_set_and_is_checked_on_it() -> None:
    spec = parse_spec(tiny_spec(input={"height": 16, "width": 16, "channels": 3}))
    assert spec.input_shape() == (3, 16, 16)
    arch = tiny_spec()["architecture"]
    arch.insert(3, {"type": "conv2d", "filters": 4, "kernel_size": 7})  # 4x4 from 8x8, 8x8 from 16
    assert parse_spec(tiny_spec(architecture=arch, input={"height": 16, "width": 16}))
    with pytest.raises(InvalidSpec, match=r"architecture\.3: .*\(1, 8, 8\)"):
        parse_spec(tiny_spec(architecture=arch))


@pytest.mark.parametrize(
    ("section", "field", "words"),
    [
        ({"channels": 2}, "input.channels", "1 or 3"),
        ({"height": 0, "width": 8}, "input.height", "greater than or equal to 1"),
        ({"height": 8, "width": 5000}, "input.width", "less than or equal to 4096"),
        ({"height": 8}, "input", "input.width is required"),
        ({"resize": "fit"}, "input.resize", "'stretch' or 'crop'"),
        ({"mean": [0.5]}, "input.mean", "unknown field"),
    ],
)
def test_a_bad_input_section_names_the_field(section: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(tiny_spec(dataset={"name": "cats"}, input=section))
    assert any(e.startswith(f"{field}: ") and words in e for e in info.value.errors), info.value


def test_a_last_layer_that_is_not_one_score_per_class_is_named() -> None:
    arch = tiny_spec()["architecture"]
    arch[-1] = {"type": "dense", "units": 5}
    with pytest.raises(InvalidSpec, match=r"architecture\.4: the model ends in 5 scores, the data"):
        parse_spec(tiny_spec(architecture=arch))
