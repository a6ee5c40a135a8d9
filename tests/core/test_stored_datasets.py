"""core.stored_datasets: uploaded data sets become training data through the same image path
the server uses, with a fixed stratified held-out split when the upload has no test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.datastore import DataStore
from core.errors import DatasetError
from core.images import conform_pixels, image_pixels, open_image
from core.stored_datasets import HOLDOUT_SEED, holdout_mask, load_stored_dataset
from tests.support.stored_datasets import shapes_archive, store_archive, store_npz


@pytest.fixture()
def store(tmp_path: Path) -> DataStore:
    return DataStore(tmp_path / "data")


# --- the held-out split ----------------------------------------------------------------------


def test_holdout_takes_a_fifth_of_each_class_rounded_half_up_keeping_one_to_train() -> None:
    # class sizes 10, 3, 2, 1 -> floor(0.2 n + 0.5) = 2, 1, 0, 0 held out
    labels = np.array([0] * 10 + [1] * 3 + [2] * 2 + [3] * 1)
    mask = holdout_mask(labels, 4)
    assert [int(mask[labels == k].sum()) for k in range(4)] == [2, 1, 0, 0]


def test_holdout_is_fixed_and_each_class_split_depends_only_on_its_own_samples() -> None:
    labels = np.repeat([0, 1], 20)
    first = holdout_mask(labels, 2)
    assert np.array_equal(first, holdout_mask(labels, 2))
    more = np.concatenate([labels, np.full(15, 2)])
    assert np.array_equal(holdout_mask(more, 3)[:40], first)
    assert not np.array_equal(holdout_mask(labels, 2, seed=HOLDOUT_SEED + 1), first)


# --- npz uploads -----------------------------------------------------------------------------


def _rows(n: int = 10, height: int = 5, width: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (n, height, width), dtype=np.uint8)
    y = np.arange(n) % 2
    return x, y


def test_an_npz_of_grey_uint8_loads_unchanged_with_a_held_out_fifth(store: DataStore) -> None:
    x, y = _rows()
    data = load_stored_dataset(store_npz(store, "grey", x, y), (1, 5, 4), "stretch")
    mask = holdout_mask(y, 2)
    assert data.x_test is not None and data.y_test is not None
    assert np.array_equal(data.x_train[:, 0], x[~mask])
    assert np.array_equal(data.x_test[:, 0], x[mask])
    assert np.array_equal(data.y_train, y[~mask]) and np.array_equal(data.y_test, y[mask])
    assert data.class_names == ["0", "1"] and data.pixel_range == (0.0, 255.0)
    assert data.source["version"] == "1" and data.name == "grey"


def test_float_pixels_are_rounded_and_class_names_kept(store: DataStore) -> None:
    x = np.zeros((6, 3, 2, 2), dtype=np.float32)
    x[:, 0] = 12.6  # -> 13
    x[:, 1] = 12.4  # -> 12
    x[:, 2] = 255.0
    stored = store_npz(store, "rgb", x, np.array([0, 1, 2] * 2), ["cat", "dog", "fox"])
    data = load_stored_dataset(stored, (3, 2, 2), "stretch")
    assert data.class_names == ["cat", "dog", "fox"]
    assert data.x_train.dtype == np.uint8
    assert (data.x_train[:, 0] == 13).all() and (data.x_train[:, 1] == 12).all()
    assert (data.x_train[:, 2] == 255).all()


@pytest.mark.parametrize("resize", ["stretch", "crop"])
def test_npz_arrays_of_another_size_go_through_the_image_path(
    store: DataStore, resize: str
) -> None:
    x, y = _rows(n=10, height=9, width=6)
    data = load_stored_dataset(store_npz(store, "small", x, y), (3, 4, 4), resize)  # type: ignore[arg-type]
    mask = holdout_mask(y, 2)
    expected = [conform_pixels(image[None], (3, 4, 4), resize) for image in x[~mask]]  # type: ignore[arg-type]
    assert data.input_shape == (3, 4, 4)
    assert np.array_equal(data.x_train, np.stack(expected))


# --- image archives --------------------------------------------------------------------------

SIZES = [(12, 16), (20, 10), (15, 15), (9, 14), (24, 18)]


def _decoded(files: dict[str, bytes], entry: str, shape: tuple[int, int, int], resize: str):
    c, h, w = shape
    return image_pixels(open_image(files[entry]), c, (h, w), entry, resize)  # type: ignore[arg-type]


def test_an_archive_of_mixed_sizes_modes_and_formats_decodes_like_the_server(
    store: DataStore,
) -> None:
    files = shapes_archive(SIZES)
    assert {entry[-3:] for entry in files} == {"png", "jpg"}
    stored = store_archive(store, "shapes", files)
    assert stored.meta.image_size is None and stored.meta.channels == 3
    data = load_stored_dataset(stored, (3, 8, 8), "crop")
    # 5 images per class -> 1 held out each; files in class then name order
    labels = np.repeat(np.arange(3), len(SIZES))
    mask = holdout_mask(labels, 3)
    entries = [
        f"{kind}/{i}.{'png' if i % 2 == 0 else 'jpg'}"
        for kind in ("bar", "disc", "square")
        for i in range(len(SIZES))
    ]
    train = [entries[i] for i in np.flatnonzero(~mask)]
    test = [entries[i] for i in np.flatnonzero(mask)]
    assert data.x_test is not None and len(test) == 3
    for got, entry in zip(data.x_train, train, strict=True):
        assert np.array_equal(got, _decoded(files, entry, (3, 8, 8), "crop")), entry
    for got, entry in zip(data.x_test, test, strict=True):
        assert np.array_equal(got, _decoded(files, entry, (3, 8, 8), "crop")), entry
    assert np.array_equal(data.y_train, labels[~mask])


def test_an_archive_with_a_test_split_keeps_it(store: DataStore) -> None:
    files = shapes_archive(SIZES, split=True)
    data = load_stored_dataset(store_archive(store, "split", files), (1, 6, 6), "stretch")
    assert data.x_test is not None and data.y_test is not None
    assert data.y_test.tolist() == [0, 1, 2]  # the last size of each class
    assert data.x_train.shape == (12, 1, 6, 6)
    assert np.array_equal(data.x_test[1], _decoded(files, "test/disc/4.png", (1, 6, 6), "stretch"))


def test_content_deleted_after_resolution_is_a_clear_error(store: DataStore) -> None:
    stored = store_npz(store, "gone", *_rows())
    store.delete("gone", 1)
    with pytest.raises(DatasetError, match=r"gone:1.*deleted meanwhile"):
        load_stored_dataset(stored, (1, 5, 4), "stretch")


def test_npz_memory_is_the_input_shaped_arrays(store: DataStore) -> None:
    """The loaded arrays are views of one preallocated array (no per-split copies)."""
    data = load_stored_dataset(store_npz(store, "views", *_rows()), (1, 5, 4), "stretch")
    assert data.x_test is not None
    assert data.x_train.base is not None and data.x_train.base is data.x_test.base
