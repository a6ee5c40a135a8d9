"""Training on uploaded data sets (in process, no Redis): the worker pins and loads the stored
set, brings every image to the spec's input, and the artifact records input, resize, data set
and normalisation so that a served image is preprocessed exactly as in training.

These check plumbing, not accuracy: a few images, one epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.artifacts import InputSpec, LoadedModel, image_input, load_artifact
from core.datastore import DataStore
from core.images import open_image
from core.stored_datasets import load_stored_dataset
from jobs.errors import InvalidSpec
from jobs.spec import parse_spec
from tests.support.stored_datasets import SHAPES, shapes_archive, store_archive, store_npz
from tests.support.training import local_settings, training_spec
from worker.settings import WorkerSettings
from worker.train import TrainOutcome, run_training

SIZES = [(12, 16), (20, 10), (15, 15), (9, 14), (24, 18), (16, 16)]


def _arch(classes: int) -> list[dict[str, Any]]:
    return [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": classes},
    ]


def _spec(dataset: dict[str, Any], classes: int, **overrides: Any) -> dict[str, Any]:
    few_images = {
        "batch_size": 8,
        "optimizer": {"type": "adam", "lr": 0.01},
        "validation_split": 0.0,
    }
    return training_spec("stored", dataset, _arch(classes), **{**few_images, **overrides})


@pytest.fixture()
def settings(tmp_path: Path) -> WorkerSettings:
    return local_settings(tmp_path)


@pytest.fixture()
def store(settings: WorkerSettings) -> DataStore:
    return DataStore(settings.data_dir)


def _train(settings: WorkerSettings, spec: dict[str, Any]) -> tuple[TrainOutcome, LoadedModel]:
    outcome = run_training(parse_spec(spec), settings, job_id="job-1")
    return outcome, load_artifact(outcome.path)


def test_a_grey_uint8_npz_trains_and_the_artifact_pins_the_data_set(
    settings: WorkerSettings, store: DataStore
) -> None:
    rng = np.random.default_rng(0)
    stored = store_npz(store, "grey", rng.integers(0, 256, (20, 8, 8), np.uint8), np.arange(20) % 2)
    outcome, loaded = _train(settings, _spec({"name": "grey"}, 2))
    meta = loaded.meta
    assert outcome.version == 1
    assert meta.dataset == {"name": "grey", "version": 1, "id": f"sha256:{stored.digest}"}
    assert meta.input == InputSpec(channels=1, height=8, width=8, resize="stretch")
    expected = load_stored_dataset(stored, (1, 8, 8), "stretch").normalisation
    assert meta.preprocessing == expected  # from the training images, after preprocessing
    assert meta.class_names == ["0", "1"]


def test_a_float_rgb_npz_with_class_names_is_brought_to_the_spec_input(
    settings: WorkerSettings, store: DataStore
) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (18, 3, 10, 7)).astype(np.float32)
    store_npz(store, "rgb", x, np.arange(18) % 3, ["a", "b", "c"])
    spec = _spec({"name": "rgb"}, 3, input={"height": 8, "width": 8, "resize": "crop"})
    _, loaded = _train(settings, spec)
    assert loaded.meta.input == InputSpec(channels=3, height=8, width=8, resize="crop")
    assert loaded.meta.class_names == ["a", "b", "c"]


@pytest.mark.parametrize("split", [False, True], ids=["held-out", "own-split"])
def test_an_archive_of_mixed_images_serves_as_it_trained(
    settings: WorkerSettings, store: DataStore, split: bool
) -> None:
    files = shapes_archive(SIZES, split=split)
    stored = store_archive(store, "shapes", files)
    spec = _spec({"name": "shapes"}, 3, input={"height": 12, "width": 12, "resize": "crop"})
    outcome, loaded = _train(settings, spec)
    meta = loaded.meta
    assert meta.input == InputSpec(channels=3, height=12, width=12, resize="crop")
    assert meta.class_names == list(SHAPES)
    assert "test_accuracy" in outcome.metrics

    data = load_stored_dataset(stored, (3, 12, 12), "crop")
    assert data.x_test is not None and data.x_test.shape[0] == 3  # one per class either way
    # The server's path for an encoded image (image_input) gives the training pixels exactly,
    # so the model answers alike; held-out images included.
    trained = np.concatenate([data.x_train, data.x_test])
    served = np.stack(
        [image_input(open_image(data_bytes), meta.input) for data_bytes in _in_load_order(files)]
    )
    assert sorted(map(bytes, served.astype(np.uint8))) == sorted(map(bytes, trained))
    by_training = loaded.predict_proba(trained)
    by_serving = loaded.predict_proba(_reordered(served, trained))
    assert np.array_equal(by_serving, by_training)


def _in_load_order(files: dict[str, bytes]) -> list[bytes]:
    return [files[entry] for entry in sorted(files)]


def _reordered(served: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """``served`` rows in the order of the equal rows of ``trained``."""
    index = {bytes(row.astype(np.uint8)): i for i, row in enumerate(served)}
    return served[[index[bytes(row)] for row in trained]]


def test_a_bundled_data_set_takes_an_input_section(settings: WorkerSettings) -> None:
    spec = _spec({"name": "digits"}, 10, input={"height": 12, "width": 12, "channels": 3})
    _, loaded = _train(settings, spec)
    assert loaded.meta.input == InputSpec(channels=3, height=12, width=12, pixel_range=(0.0, 16.0))
    assert loaded.meta.dataset == {"name": "digits"}


def test_a_data_set_deleted_before_the_job_runs_fails_it_naming_the_data_set(
    settings: WorkerSettings, store: DataStore
) -> None:
    rng = np.random.default_rng(0)
    store_npz(store, "gone", rng.integers(0, 256, (8, 8, 8), np.uint8), np.arange(8) % 2)
    store.delete("gone", 1)
    with pytest.raises(InvalidSpec) as info:
        run_training(parse_spec(_spec({"name": "gone"}, 2)), settings, job_id="job-2")
    assert info.value.errors == ["dataset: data set 'gone' not found: the store is empty"]
