"""Data sets: bundled loaders, IDX parsing, user .npz and image folders, augmentation."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from core import datasets
from core.augment import Augmentation, augment_batch
from core.datasets import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    DatasetRef,
    load_dataset,
    load_fashion_mnist,
    read_idx,
)
from core.errors import DatasetError


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_gz(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.write(data)
    return path


# --- bundled sets ------------------------------------------------------------------------------


def test_digits_is_uint8_nchw_with_a_fixed_20_percent_test_split() -> None:
    a = load_dataset({"name": "digits"})
    b = load_dataset(DatasetRef(name="digits"))
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test is not None
    assert a.x_test.shape == (359, 1, 8, 8)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert a.pixel_range == (0.0, 16.0) and int(a.x_train.max()) == 16
    assert a.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_normalisation_is_per_channel_mean_and_std_of_the_training_images() -> None:
    data = load_dataset({"name": "digits"})
    norm = data.normalisation
    assert norm.mean == pytest.approx([data.x_train.mean()])
    assert norm.std == pytest.approx([data.x_train.std()])
    x = norm.apply(data.x_train)
    assert x.dtype == np.float32
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(x.std()) == pytest.approx(1.0, abs=1e-3)


def test_mnist_5k_is_shuffled_before_holding_out_1000() -> None:
    data = load_dataset({"name": "mnist-5k"})
    assert data.x_train.shape == (4000, 1, 28, 28)
    assert data.x_test is not None and data.y_test is not None
    assert data.x_test.shape == (1000, 1, 28, 28)
    counts = np.bincount(data.y_test, minlength=10)
    assert counts.min() > 60, counts  # shuffled: every class is in the test split
    assert data.pixel_range == (0.0, 255.0) and int(data.x_train.max()) == 255


@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
def test_known_input_shapes_are_those_of_the_loaded_data_sets(name: str) -> None:
    assert datasets.KNOWN_INPUT_SHAPES[name] == load_dataset({"name": name}).input_shape


def test_every_bundled_data_set_name_is_a_dataset_ref_name() -> None:
    for name in datasets.KNOWN_INPUT_SHAPES:
        assert DatasetRef(name=name).name == name  # type: ignore[arg-type]


def test_missing_fashion_mnist_names_the_apt_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(
    not (datasets.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_has_60k_train_10k_test() -> None:
    data = load_fashion_mnist()
    assert data.x_train.shape == (60_000, 1, 28, 28)
    assert data.x_test is not None and data.x_test.shape == (10_000, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert data.class_names[0] == "T-shirt/top"


# --- IDX ---------------------------------------------------------------------------------------


def test_read_idx_round_trips_images_and_labels(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    p_img = _write_gz(tmp_path / "i.gz", _idx_bytes(IDX_IMAGES_MAGIC, images))
    p_lab = _write_gz(tmp_path / "l.gz", _idx_bytes(IDX_LABELS_MAGIC, labels))
    np.testing.assert_array_equal(read_idx(p_img, IDX_IMAGES_MAGIC), images)
    np.testing.assert_array_equal(read_idx(p_lab, IDX_LABELS_MAGIC), labels)


def test_read_idx_rejects_a_wrong_magic_number(tmp_path: Path) -> None:
    path = _write_gz(tmp_path / "l.gz", _idx_bytes(IDX_LABELS_MAGIC, np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError, match="magic number is 0x00000801, expected 0x00000803"):
        read_idx(path, IDX_IMAGES_MAGIC)


def test_read_idx_rejects_truncated_data(tmp_path: Path) -> None:
    data = _idx_bytes(IDX_IMAGES_MAGIC, np.zeros((5, 4, 4), np.uint8))[:-7]
    path = _write_gz(tmp_path / "i.gz", data)
    with pytest.raises(DatasetError, match="need 80 data bytes, file has 73"):
        read_idx(path, IDX_IMAGES_MAGIC)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path: Path) -> None:
    full = tmp_path / "full.gz"
    _write_gz(full, _idx_bytes(IDX_IMAGES_MAGIC, np.zeros((50, 28, 28), np.uint8)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(full.read_bytes()[:40])
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(cut, IDX_IMAGES_MAGIC)


def test_fashion_mnist_checks_the_counts(tmp_path: Path) -> None:
    for prefix, n in (("train", 10), ("t10k", 10)):
        _write_gz(
            tmp_path / f"{prefix}-images-idx3-ubyte.gz",
            _idx_bytes(IDX_IMAGES_MAGIC, np.zeros((n, 28, 28), np.uint8)),
        )
        _write_gz(
            tmp_path / f"{prefix}-labels-idx1-ubyte.gz",
            _idx_bytes(IDX_LABELS_MAGIC, np.zeros(n, np.uint8)),
        )
    with pytest.raises(DatasetError, match=r"shape \(10, 28, 28\), expected \(60000, 28, 28\)"):
        load_fashion_mnist(tmp_path)


# --- user .npz ---------------------------------------------------------------------------------


def test_npz_with_nhw_images_gets_one_channel(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (20, 6, 5), dtype=np.uint8)
    y = np.arange(20) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    data = load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)
    assert data.x_train.shape == (20, 1, 6, 5)
    assert data.class_names == ["a", "b", "c"] and data.x_test is None
    np.testing.assert_array_equal(data.x_train[:, 0], x)


def test_npz_with_nhwc_images_is_transposed_to_nchw(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (8, 4, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1] * 4))
    data = load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)
    assert data.x_train.shape == (8, 3, 4, 5)
    np.testing.assert_array_equal(data.x_train[3, 2], x[3, :, :, 2])
    assert data.class_names == ["0", "1"]
    assert len(data.normalisation.mean) == 3


def test_npz_rejects_float_pixels(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 3)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DatasetError, match="dtype is float64, expected uint8"):
        load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)


def test_npz_rejects_label_count_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 0]))
    with pytest.raises(DatasetError, match=r"shape \(3,\), expected \(4,\)"):
        load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "d.npz",
        x=np.zeros((2, 3, 3), np.uint8),
        y=np.array([0, 1]),
        classes=np.array(["a", {"evil": 1}], dtype=object),
    )
    with pytest.raises(DatasetError, match="pickle"):
        load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)


def test_npz_labels_beyond_classes_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 3, 3), np.uint8), y=[0, 1, 2], classes=["a", "b"])
    with pytest.raises(DatasetError, match=r"labels must lie in 0..1"):
        load_dataset({"name": "npz", "path": "d.npz"}, tmp_path)


def test_dataset_paths_cannot_escape_the_data_dir(tmp_path: Path) -> None:
    inner = tmp_path / "data"
    inner.mkdir()
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 3), np.uint8), y=[0, 1])
    with pytest.raises(DatasetError, match="outside the data directory"):
        load_dataset({"name": "npz", "path": "../d.npz"}, inner)


def test_dataset_ref_validates_name_and_path() -> None:
    with pytest.raises(ValidationError, match=r"dataset\.path is required"):
        DatasetRef(name="npz")
    with pytest.raises(ValidationError, match="neither a bundled data set"):
        DatasetRef.model_validate({"name": "cifar/10"})
    with pytest.raises(ValidationError):
        DatasetRef.model_validate({"name": "digits", "extra": 1})


@pytest.mark.parametrize(
    "ref",
    [
        {"name": "cats"},
        {"name": "cats", "version": 2},
        {"id": "sha256:" + "ab" * 32},
        {"name": "cats", "version": 2, "id": "sha256:" + "ab" * 32},
    ],
)
def test_uploaded_data_sets_are_named_by_name_version_or_id(ref: dict) -> None:
    parsed = DatasetRef.model_validate(ref)
    assert parsed.is_stored
    assert parsed.model_dump() == ref  # unset keys are not written (payloads, artifacts)


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ({}, "needs a name"),
        ({"version": 2, "id": "sha256:" + "ab" * 32}, "dataset.version needs dataset.name"),
        ({"name": "digits", "version": 1}, "not used by the bundled data set 'digits'"),
        ({"name": "npz", "path": "a.npz", "id": "sha256:" + "ab" * 32}, "file data set"),
        ({"name": "cats", "path": "cats.npz"}, "only used with dataset.name 'npz' or 'folder'"),
        ({"id": "sha256:" + "AB" * 32}, "64 lowercase hex"),
        ({"id": "ab" * 32}, "expected 'sha256:'"),
        ({"name": "ab" * 32}, "neither a bundled data set"),
        ({"name": "cats", "version": 0}, "greater than or equal to 1"),
    ],
)
def test_malformed_references_are_refused(ref: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        DatasetRef.model_validate(ref)


def test_bundled_and_file_references_are_not_stored() -> None:
    assert not DatasetRef(name="digits").is_stored
    assert not DatasetRef(name="npz", path="a.npz").is_stored
    assert DatasetRef(name="npz", path="a.npz").model_dump() == {"name": "npz", "path": "a.npz"}


# --- image folders -----------------------------------------------------------------------------


def _folder(root: Path, size: tuple[int, int] = (6, 4), mode: str = "L") -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / cls / f"{i}.png")


def test_image_folder_classes_are_the_sorted_subdirectories(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    data = load_dataset({"name": "folder", "path": "imgs"}, tmp_path)
    assert data.class_names == ["cat", "dog"]
    assert data.x_train.shape == (6, 1, 4, 6)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1]


def test_image_folder_in_colour_has_three_channels(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs", mode="RGB")
    data = load_dataset({"name": "folder", "path": "imgs"}, tmp_path)
    assert data.x_train.shape == (6, 3, 4, 6)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_image_folder_pixels_are_the_files_pixels_in_nchw(tmp_path: Path, mode: str) -> None:
    _folder(tmp_path / "imgs", mode=mode)
    data = load_dataset({"name": "folder", "path": "imgs"}, tmp_path)
    with Image.open(tmp_path / "imgs" / "cat" / "0.png") as image:
        hwc = np.asarray(image).reshape(4, 6, -1)
    np.testing.assert_array_equal(data.x_train[0], hwc.transpose(2, 0, 1))


def test_image_folder_with_an_undecodable_image_names_the_file(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match=r"broken.png could not be decoded as PNG or JPEG"):
        load_dataset({"name": "folder", "path": "imgs"}, tmp_path)


def test_image_folder_with_mixed_sizes_names_the_file(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    Image.new("L", (9, 9)).save(tmp_path / "imgs" / "dog" / "big.png")
    with pytest.raises(DatasetError, match=r"big.png: size 9×9 differs from 6×4"):
        load_dataset({"name": "folder", "path": "imgs"}, tmp_path)


# --- augmentation ------------------------------------------------------------------------------


def test_shift_moves_content_and_fills_with_zero() -> None:
    x = np.zeros((200, 1, 5, 5), np.uint8)
    x[:, 0, 2, 2] = 9
    out = augment_batch(x, Augmentation(shift=1), np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert (out.reshape(200, -1).sum(axis=1) == 9).all()  # a 1-pixel shift keeps the centre dot
    positions = {tuple(np.argwhere(o[0] == 9)[0]) for o in out}
    assert positions == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}


def test_flip_mirrors_about_half_of_the_images() -> None:
    x = np.zeros((400, 1, 3, 4), np.uint8)
    x[:, 0, :, 0] = 1
    out = augment_batch(x, Augmentation(flip=True), np.random.default_rng(0))
    flipped = out[:, 0, 0, 3] == 1
    assert 150 < flipped.sum() < 250
    np.testing.assert_array_equal(out[flipped], x[flipped][..., ::-1])


def test_augmentation_is_reproducible_from_the_generator_state() -> None:
    x = np.random.default_rng(1).integers(0, 255, (16, 1, 8, 8), dtype=np.uint8)
    cfg = Augmentation(shift=2, flip=True)
    a = augment_batch(x, cfg, np.random.default_rng(5))
    b = augment_batch(x, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
