"""jobs.datasets: a spec naming an uploaded data set is pinned to its content id at submit time,
with its input completed, or refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.datastore import DataStore, StoredDataset
from jobs.datasets import pin_dataset
from jobs.errors import InvalidSpec
from jobs.limits import DEFAULT_LIMITS
from jobs.spec import TrainSpec, parse_spec
from tests.support.stored_datasets import shapes_archive, store_archive, store_npz
from tests.worker.helpers import tiny_spec


@pytest.fixture()
def store(tmp_path: Path) -> DataStore:
    return DataStore(tmp_path / "data")


def _npz(store: DataStore, name: str = "cats", classes: int = 10, seed: int = 0) -> StoredDataset:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (2 * classes, 8, 8), dtype=np.uint8)
    return store_npz(store, name, x, np.arange(2 * classes) % classes)


def _spec(**overrides: Any) -> TrainSpec:
    return parse_spec(tiny_spec(**overrides))


def _pin(spec: TrainSpec, store: DataStore) -> TrainSpec:
    return pin_dataset(spec, store, DEFAULT_LIMITS)


def _errors(spec: TrainSpec, store: DataStore) -> list[str]:
    with pytest.raises(InvalidSpec) as info:
        _pin(spec, store)
    return info.value.errors


def test_a_name_is_pinned_to_its_newest_version_and_content_id(store: DataStore) -> None:
    _npz(store, seed=1)
    newest = _npz(store, seed=2)
    pinned = _pin(_spec(dataset={"name": "cats"}), store)
    assert pinned.payload()["dataset"] == {
        "name": "cats",
        "version": 2,
        "id": f"sha256:{newest.digest}",
    }
    assert pinned.payload()["input"] == {
        "channels": 1,
        "height": 8,
        "width": 8,
        "resize": "stretch",
    }


def test_a_version_and_an_id_are_pinned_too(store: DataStore) -> None:
    first = _npz(store, seed=1)
    _npz(store, seed=2)
    by_version = _pin(_spec(dataset={"name": "cats", "version": 1}), store)
    assert by_version.dataset.id == f"sha256:{first.digest}"
    by_id = _pin(_spec(dataset={"id": f"sha256:{first.digest}"}), store)
    assert (by_id.dataset.name, by_id.dataset.version) == ("cats", 1)


def test_pinning_is_idempotent_and_the_payload_round_trips(store: DataStore) -> None:
    _npz(store)
    pinned = _pin(_spec(dataset={"name": "cats"}, input={"resize": "crop"}), store)
    again = _pin(parse_spec(pinned.payload()), store)
    assert again == pinned
    assert again.resize() == "crop"


def test_bundled_and_file_data_sets_are_left_alone(store: DataStore) -> None:
    spec = _spec()
    assert _pin(spec, store) is spec
    files = _spec(dataset={"name": "npz", "path": "mine.npz"})
    assert _pin(files, store) is files


@pytest.mark.parametrize(
    ("ref", "asked"),
    [
        ({"name": "dogs"}, "'dogs'"),
        ({"name": "cats", "version": 3}, "'cats:3'"),
        ({"id": "sha256:" + "0" * 64}, "sha256:" + "0" * 64),
    ],
)
def test_an_unknown_data_set_names_dataset_and_lists_what_is_stored(
    store: DataStore, ref: dict[str, Any], asked: str
) -> None:
    _npz(store)
    _npz(store, seed=3)
    (error,) = _errors(_spec(dataset=ref), store)
    assert error.startswith("dataset: ") and asked in error
    assert "stored: cats (versions 1, 2)" in error


def test_an_empty_store_says_so(store: DataStore) -> None:
    (error,) = _errors(_spec(dataset={"name": "cats"}), store)
    assert error == "dataset: data set 'cats' not found: the store is empty"


def test_a_name_and_version_holding_other_content_than_the_id_is_refused(
    store: DataStore,
) -> None:
    first = _npz(store, seed=1)
    _npz(store, seed=2)
    ref = {"name": "cats", "version": 2, "id": f"sha256:{first.digest}"}
    (error,) = _errors(_spec(dataset=ref), store)
    assert error.startswith("dataset.id: ") and "'cats:2'" in error and "cats:1" in error


def test_mixed_image_sizes_need_an_input_size(store: DataStore) -> None:
    store_archive(store, "shapes", shapes_archive([(12, 16), (20, 10), (9, 9)]))
    arch = tiny_spec()["architecture"]
    arch[-1] = {"type": "dense", "units": 3}
    (error,) = _errors(_spec(dataset={"name": "shapes"}, architecture=arch), store)
    assert error.startswith("input.height: ") and "9x9 to 20x16" in error
    pinned = _pin(
        _spec(dataset={"name": "shapes"}, architecture=arch, input={"height": 10, "width": 12}),
        store,
    )
    assert pinned.input is not None and pinned.input.shape == (3, 10, 12)


def test_an_architecture_that_does_not_fit_the_images_names_the_layer(store: DataStore) -> None:
    _npz(store)
    arch = tiny_spec()["architecture"]
    arch.insert(3, {"type": "conv2d", "filters": 4, "kernel_size": 7})  # 4x4 after the pool
    (error,) = _errors(_spec(dataset={"name": "cats"}, architecture=arch), store)
    assert error.startswith("architecture.3: ") and "(1, 8, 8)" in error


def test_the_input_section_is_what_the_architecture_is_checked_on(store: DataStore) -> None:
    _npz(store)
    arch = tiny_spec()["architecture"]
    arch.insert(3, {"type": "conv2d", "filters": 4, "kernel_size": 7})
    pinned = _pin(
        _spec(dataset={"name": "cats"}, architecture=arch, input={"height": 16, "width": 16}),
        store,
    )
    assert pinned.input is not None and pinned.input.shape == (1, 16, 16)


def test_a_last_layer_of_the_wrong_class_count_is_named(store: DataStore) -> None:
    _npz(store, classes=4)
    (error,) = _errors(_spec(dataset={"name": "cats"}), store)  # dense 10 at index 4
    assert error.startswith("architecture.4: ") and "10 scores" in error and "4 classes" in error
