"""Uploaded data sets (:mod:`core.datastore`) as training data: a :class:`core.datasets.Dataset`
of uint8 (N, C, H, W) images brought to a model's input.

Every image goes through :func:`core.images.image_pixels` with the model's channels, size and
resize mode, the function the server applies to an encoded image (``core.artifacts.image_input``),
so a model sees in training exactly what it is served:

- image archives (stored as ``content/<split>/<class>/<n>.png|.jpg``, see
  :func:`core.ingest.extract_archive`): each file decoded with :func:`core.images.open_image`;
- ``.npz`` uploads (stored as ``content/data.npz``): ``x`` N×H×W or N×C×H×W; float32 pixels
  (0..255) are rounded to the nearest integer and clipped to 0..255 (uint8, as a PNG would hold
  them); arrays whose size or channels differ from the input go through
  :func:`core.images.conform_pixels` (the same conversion as a decoded file).

Memory: images are decoded (or read from the ``.npz``, a block of samples at a time) one by one
into preallocated train and test arrays of the input shape; the upload is never held whole.

The test split is the upload's own ``test/`` images when it has any; otherwise a fixed, seeded,
stratified :data:`HOLDOUT_FRACTION` of each class (:func:`holdout_mask`, seed
:data:`HOLDOUT_SEED`), so every job, retry and evaluation of one data set holds out the same
samples.

A regression ``.npz`` (float ``y``, ``DatasetMeta.task == "regression"``) loads as float32
targets (N, K) with the meta's target names; having no classes to stratify by, its hold-out is
a plain seeded random :data:`HOLDOUT_FRACTION` of the samples (:func:`regression_holdout_mask`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from core.datasets import IMAGE_SUFFIXES, Dataset
from core.datastore import StoredDataset
from core.errors import DatasetError
from core.images import ImageDecodeError, ResizeMode, conform_pixels, image_pixels, open_image

#: Fixed seed of the held-out split of uploads without a test split. Never change it: the
#: split (and so every published test accuracy) of a stored data set would change with it.
HOLDOUT_SEED = 20261130
#: Share of each class held out as the test split (rounded half up; at least one sample of a
#: class always stays in training).
HOLDOUT_FRACTION = 0.2
#: Where an ``.npz`` upload sits in its content directory.
NPZ_FILE = "data.npz"
#: Bytes of ``x`` read from an ``.npz`` at a time.
_NPZ_BLOCK_BYTES = 1 << 20

Shape = tuple[int, int, int]


def holdout_mask(
    labels: np.ndarray,
    num_classes: int,
    fraction: float = HOLDOUT_FRACTION,
    seed: int = HOLDOUT_SEED,
) -> np.ndarray:
    """Which samples are held out: bool (N,), True = test.

    Class ``k`` with ``n_k`` samples holds out ``min(floor(fraction * n_k + 0.5), n_k - 1)`` of
    them, chosen by ``np.random.default_rng([seed, k])``: a class's split depends only on its
    own samples (their order in the data set), not on the other classes.
    """
    mask = np.zeros(labels.shape[0], dtype=bool)
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        n_test = min(int(fraction * members.size + 0.5), members.size - 1)
        if n_test > 0:
            chosen = np.random.default_rng([seed, k]).choice(members, n_test, replace=False)
            mask[chosen] = True
    return mask


def regression_holdout_mask(
    n: int, fraction: float = HOLDOUT_FRACTION, seed: int = HOLDOUT_SEED
) -> np.ndarray:
    """Which of ``n`` regression samples are held out: bool (N,), True = test;
    ``min(floor(fraction * n + 0.5), n - 1)`` of them, chosen by ``default_rng([seed])``."""
    mask = np.zeros(n, dtype=bool)
    n_test = min(int(fraction * n + 0.5), n - 1)
    if n_test > 0:
        mask[np.random.default_rng([seed]).choice(n, n_test, replace=False)] = True
    return mask


def load_stored_dataset(stored: StoredDataset, shape: Shape, resize: ResizeMode) -> Dataset:
    """The stored data set ``stored`` with every image brought to ``shape`` = (C, H, W) by
    ``resize`` (see the module docstring).

    Raises:
        DatasetError: content missing (deleted meanwhile) or not what its meta says, an image
            that does not decode.
    """
    if not stored.path.is_dir():
        raise DatasetError(
            f"data set {stored.ref} (sha256:{stored.digest}) has no content: deleted meanwhile?"
        )
    if stored.meta.format == "npz":
        return _load_npz(stored, shape, resize)
    return _load_images(stored, shape, resize)


def _dataset(stored: StoredDataset, x: np.ndarray, y: np.ndarray, n_test: int) -> Dataset:
    """The Dataset of ``x``/``y`` holding the training samples first, then ``n_test`` test
    samples (views, no copies; no test samples: no test split)."""
    n_train = x.shape[0] - n_test
    regression = stored.meta.task == "regression"
    source: dict[str, str | None] = {
        "name": stored.name,
        "version": str(stored.version),
        "id": f"sha256:{stored.digest}",
    }
    return Dataset(
        x[:n_train],
        y[:n_train],
        x[n_train:] if n_test else None,
        y[n_train:] if n_test else None,
        list(stored.meta.classes),
        (0.0, 255.0),
        stored.name,
        source,
        list(stored.meta.targets) if regression else None,
    )


def _slots(is_test: np.ndarray) -> np.ndarray:
    """Row of each sample in one array holding the training samples first, then the test
    samples, each in data set order."""
    n_train = int((~is_test).sum())
    return np.where(is_test, n_train + np.cumsum(is_test) - 1, np.cumsum(~is_test) - 1)


# --- image archives ------------------------------------------------------------------------------


def _image_files(content: Path, classes: tuple[str, ...], split: str) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        directory = content / split / name
        if directory.is_dir():
            found = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files.extend((path, label) for path in found)
    return files


def _load_images(stored: StoredDataset, shape: Shape, resize: ResizeMode) -> Dataset:
    classes = stored.meta.classes
    train = _image_files(stored.path, classes, "train")
    test = _image_files(stored.path, classes, "test")
    if not train:
        raise DatasetError(f"data set {stored.ref}: no training images in its content")
    files = train + test
    y = np.array([label for _, label in files], dtype=np.int64)
    # the upload's own test split, else the seeded hold-out
    is_test = np.arange(len(files)) >= len(train) if test else holdout_mask(y, len(classes))
    slots = _slots(is_test)
    x = np.empty((len(files), *shape), dtype=np.uint8)
    channels, height, width = shape
    for (path, _), slot in zip(files, slots, strict=True):
        what = f"data set {stored.ref}: {path.relative_to(stored.path)}"
        try:
            image = open_image(path.read_bytes(), what)
            x[slot] = image_pixels(image, channels, (height, width), what, resize)
        except OSError as exc:
            raise DatasetError(f"{what}: cannot read ({exc.strerror})") from None
        except ImageDecodeError as exc:
            raise DatasetError(str(exc)) from None
    return _dataset(stored, x, y[np.argsort(slots)], int(is_test.sum()))


# --- npz -----------------------------------------------------------------------------------------


def _npy_header(fh: IO[bytes], what: str) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise DatasetError(f"{what}: .npy format version {version} is not supported")
    if fortran or dtype.hasobject:
        raise DatasetError(f"{what}: a Fortran-ordered or object array (checked at upload?)")
    return tuple(int(n) for n in shape), dtype


def _load_npz(stored: StoredDataset, shape: Shape, resize: ResizeMode) -> Dataset:
    path = stored.path / NPZ_FILE
    what = f"data set {stored.ref}: {NPZ_FILE}"
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open("y.npy") as fh:
                y = np.lib.format.read_array(fh, allow_pickle=False)
            if stored.meta.task == "regression":
                y = y.astype(np.float32).reshape(y.shape[0], -1)
            else:
                y = y.astype(np.int64)
            with archive.open("x.npy") as fh:
                x_shape, dtype = _npy_header(fh, f"{what}: x")
                return _read_x(stored, fh, x_shape, dtype, y, shape, resize, what)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{what}: cannot read ({type(exc).__name__}: {exc})") from None


def _read_x(
    stored: StoredDataset,
    fh: IO[bytes],
    x_shape: tuple[int, ...],
    dtype: np.dtype,
    y: np.ndarray,
    shape: Shape,
    resize: ResizeMode,
    what: str,
) -> Dataset:
    """Stream ``x`` a block of samples at a time into the preallocated input-shaped array."""
    sample_shape = (1, *x_shape[1:]) if len(x_shape) == 3 else x_shape[1:]
    n = x_shape[0]
    if len(sample_shape) != 3 or y.shape[:1] != (n,):
        raise DatasetError(f"{what}: x {x_shape} and y {y.shape} do not form a data set")
    if stored.meta.task == "regression":
        if y.shape != (n, len(stored.meta.targets)):
            raise DatasetError(f"{what}: y {y.shape} does not hold the meta's targets")
        is_test = regression_holdout_mask(n)
    else:
        num_classes = len(stored.meta.classes)
        if y.ndim != 1 or (n and (y.min() < 0 or y.max() >= num_classes)):
            raise DatasetError(f"{what}: labels outside 0..{num_classes - 1}")
        is_test = holdout_mask(y, num_classes)
    slots = _slots(is_test)
    x = np.empty((n, *shape), dtype=np.uint8)
    sample_bytes = int(np.prod(sample_shape)) * dtype.itemsize
    per_block = max(1, _NPZ_BLOCK_BYTES // sample_bytes)
    for start in range(0, n, per_block):
        count = min(per_block, n - start)
        raw = fh.read(count * sample_bytes)
        if len(raw) != count * sample_bytes:
            raise DatasetError(f"{what}: x is truncated at sample {start}")
        block = np.frombuffer(raw, dtype=dtype).reshape(count, *sample_shape)
        if block.dtype.kind == "f":
            block = np.clip(np.rint(block), 0, 255).astype(np.uint8)
        else:
            block = block.astype(np.uint8, copy=False)
        targets = slots[start : start + count]
        if tuple(sample_shape) == tuple(shape):
            x[targets] = block
            continue
        for i in range(count):
            try:
                x[targets[i]] = conform_pixels(block[i], shape, resize)
            except ImageDecodeError as exc:
                raise DatasetError(f"{what}: sample {start + i}: {exc}") from None
    return _dataset(stored, x, y[np.argsort(slots)], int(is_test.sum()))
