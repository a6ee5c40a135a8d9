"""``.npz`` uploads: :func:`inspect_npz`, arrays streamed from their ``.npy`` members, never
unpickled.

``y`` decides the task: integer labels (N,) make a classification set (optional
``class_names``); float32/float64 targets (N,) or (N, K), all finite, make a regression set
(optional ``target_names``, K strings; default "0".."K-1"; K at most ``max_classes``)."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from core.ingest.errors import (
    DatasetSummary,
    IngestError,
    IngestLimits,
    check_class_name,
    check_size,
)
from core.ingest.members import check_zip_info, open_zip
from core.ingest.stats import VALUES_PER_BLOCK, Moments

NPZ_ARRAYS = ("x", "y", "class_names", "target_names")
_NPZ_MAX_ENTRIES = 16  # more than enough to name the unexpected ones
MAX_CLASS_NAME_CHARS = 1024  # itemsize bound of a class_names array, checked before reading it


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype


def _npy_header(fh: IO[bytes], what: str) -> _NpyHeader:
    """Read the header of one ``.npy`` member (the data is left in the stream).

    Raises:
        IngestError: format for a bad header, a Fortran-ordered array, or an object array (its
            data would be a pickle: never loaded).
    """
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            shape, fortran_order, dtype = (), False, None
    except ValueError as exc:
        raise IngestError("format", f"{what}: not a valid .npy array ({exc})") from None
    if dtype is None:
        raise IngestError("format", f"{what}: .npy format version {version} is not supported")
    if dtype.hasobject:
        raise IngestError(
            "format",
            f"{what}: an object array (pickled Python objects) is refused; save plain numeric "
            "and string arrays",
        )
    if fortran_order:
        raise IngestError(
            "format", f"{what}: Fortran-ordered array; save np.ascontiguousarray(...) instead"
        )
    return _NpyHeader(tuple(int(n) for n in shape), dtype)


def _read_exact(fh: IO[bytes], size: int, what: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise IngestError("format", f"{what}: truncated ({len(data)} of {size} data bytes)")
    return data


def _read_labels(fh: IO[bytes], header: _NpyHeader, what: str) -> np.ndarray:
    if len(header.shape) != 1 or header.dtype.kind not in "iu":
        raise IngestError(
            "labels",
            f"{what}: must be 1-D integer labels (classification) or float32/float64 "
            f"targets (N,) or (N, K) (regression), got {header.dtype} {header.shape}",
        )
    data = _read_exact(fh, header.shape[0] * header.dtype.itemsize, what)
    return np.frombuffer(data, dtype=header.dtype).astype(np.int64)


def _read_targets(fh: IO[bytes], header: _NpyHeader, what: str, limits: IngestLimits) -> np.ndarray:
    """Float targets (N, K) float64 of a regression ``y``, all finite."""
    shape = header.shape
    if len(shape) not in (1, 2) or header.dtype.itemsize not in (4, 8):
        raise IngestError(
            "labels",
            f"{what}: regression targets must be float32/float64 (N,) or (N, K), got "
            f"{header.dtype} {shape}",
        )
    k = shape[1] if len(shape) == 2 else 1
    if k < 1:
        raise IngestError("labels", f"{what}: shape {shape} holds no targets")
    if k > limits.max_classes:
        raise IngestError(
            "too_large", f"{what}: {k} targets, over max_classes {limits.max_classes}"
        )
    data = _read_exact(fh, shape[0] * k * header.dtype.itemsize, what)
    y = np.frombuffer(data, dtype=header.dtype).astype(np.float64).reshape(shape[0], k)
    if not np.all(np.isfinite(y)):
        bad = int(np.flatnonzero(~np.isfinite(y).all(axis=1))[0])
        raise IngestError("labels", f"{what}: target of sample {bad} is NaN or infinite")
    return y


def _read_class_names(
    fh: IO[bytes], header: _NpyHeader, what: str, limits: IngestLimits
) -> list[str]:
    if len(header.shape) != 1 or header.dtype.kind not in "US":
        raise IngestError(
            "classes", f"{what}: must be a 1-D array of strings, got {header.dtype} {header.shape}"
        )
    if header.shape[0] > limits.max_classes:
        raise IngestError(
            "too_large", f"{what}: {header.shape[0]} classes, over max_classes {limits.max_classes}"
        )
    chars = header.dtype.itemsize // (4 if header.dtype.kind == "U" else 1)
    if chars > MAX_CLASS_NAME_CHARS:
        raise IngestError(
            "classes", f"{what}: names of up to {chars} characters; max {MAX_CLASS_NAME_CHARS}"
        )
    raw = np.frombuffer(
        _read_exact(fh, header.shape[0] * header.dtype.itemsize, what), header.dtype
    )
    try:
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in raw.tolist()]
    except UnicodeDecodeError as exc:
        raise IngestError("classes", f"{what}: a name is not UTF-8 ({exc})") from None
    for name in names:
        check_class_name(name, what)
    if len(set(names)) != len(names):
        raise IngestError("classes", f"{what}: names repeat: {names}")
    return names


def _check_image_shape(header: _NpyHeader, what: str, limits: IngestLimits) -> tuple[int, ...]:
    """x's (N, C, H, W) from its header, checked against the limits before any pixel is read."""
    shape = header.shape
    kind, itemsize = header.dtype.kind, header.dtype.itemsize
    if not ((kind == "u" and itemsize == 1) or (kind == "f" and itemsize == 4)):
        raise IngestError("format", f"{what}: dtype {header.dtype}, expected uint8 or float32")
    if len(shape) == 3:
        shape = (shape[0], 1, shape[1], shape[2])
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise IngestError(
            "format", f"{what}: shape {header.shape}, expected N×H×W or N×C×H×W with C in 1, 3"
        )
    n, _, height, width = shape
    if min(n, height, width) < 1:
        raise IngestError("format", f"{what}: shape {header.shape} holds no pixels")
    if n > limits.max_files:
        raise IngestError("too_large", f"{what}: {n} samples, over max_files {limits.max_files}")
    if max(height, width) > limits.max_image_side:
        raise IngestError(
            "too_large",
            f"{what}: images are {width}x{height}; each side must be <= "
            f"{limits.max_image_side} (max_image_side)",
        )
    if n * height * width > limits.max_decoded_pixels:
        raise IngestError(
            "too_large",
            f"{what}: {n * height * width} pixels, over max_decoded_pixels "
            f"{limits.max_decoded_pixels}",
        )
    return shape


def _pixel_moments(fh: IO[bytes], header: _NpyHeader, shape: tuple[int, ...], what: str) -> Moments:
    """Stream x's data into moments: whole samples at a time when one fits a block (small
    images: one read and one merge per channel for thousands of them), else a band of rows at
    a time (never crossing a channel plane); float pixels must be finite and within 0..255."""
    n, channels, height, width = shape
    sample_values = channels * height * width
    if sample_values > VALUES_PER_BLOCK:
        return _band_moments(fh, header, shape, what)
    per_block = VALUES_PER_BLOCK // sample_values
    moments = Moments(channels)
    for start in range(0, n, per_block):
        count = min(per_block, n - start)
        data = _read_exact(fh, count * sample_values * header.dtype.itemsize, what)
        values = np.frombuffer(data, dtype=header.dtype).reshape(count, channels, -1)
        _check_float_pixels(values, start, what)
        for channel in range(channels):
            moments.add(channel, values[:, channel])
    return moments


def _band_moments(fh: IO[bytes], header: _NpyHeader, shape: tuple[int, ...], what: str) -> Moments:
    """:func:`_pixel_moments` for samples larger than a block, a band of rows at a time."""
    n, channels, height, width = shape
    # The most rows that divide H and fit a block (at least one row): bands then never straddle
    # two channel planes, so each band belongs to one channel.
    rows = max(
        d
        for d in range(1, height + 1)
        if height % d == 0 and (d == 1 or d * width <= VALUES_PER_BLOCK)
    )
    band_bytes = rows * width * header.dtype.itemsize
    moments = Moments(channels)
    for band in range(n * channels * (height // rows)):
        values = np.frombuffer(_read_exact(fh, band_bytes, what), dtype=header.dtype)
        _check_float_pixels(values[None], band // (channels * (height // rows)), what)
        plane = band // (height // rows)
        moments.add(plane % channels, values)
    return moments


def _check_float_pixels(samples: np.ndarray, first: int, what: str) -> None:
    """Float pixels of ``samples`` (sample index first; ``first`` is the index of the first)
    must be finite and within 0..255; the error names the first sample that is not."""
    if samples.dtype.kind != "f":
        return
    if np.isfinite(samples).all() and samples.min() >= 0 and samples.max() <= 255:
        return
    flat = samples.reshape(samples.shape[0], -1)
    bad = ~(np.isfinite(flat) & (flat >= 0) & (flat <= 255)).all(axis=1)
    sample = first + int(np.argmax(bad))
    raise IngestError("format", f"{what}: sample {sample} has values outside 0..255 (or NaN/inf)")


def inspect_npz(path: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an ``.npz`` upload array by array and summarise it; arrays are streamed, never
    loaded whole, and never unpickled.

    Raises:
        IngestError: the first problem found (see the module docstring for the kinds).
    """
    limits = limits or IngestLimits()
    path = Path(path)
    check_size(path, limits)
    try:
        with open_zip(path, _NPZ_MAX_ENTRIES) as archive:
            return _inspect_npz_members(path, archive, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise IngestError(
            "format", f"{path}: not a readable .npz ({type(exc).__name__}: {exc})"
        ) from None


def _inspect_npz_members(
    path: Path, archive: zipfile.ZipFile, limits: IngestLimits
) -> DatasetSummary:
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        what = f"{path}: {info.filename}"
        name = info.filename.removesuffix(".npy")
        if name not in NPZ_ARRAYS or name in infos:
            raise IngestError(
                "format",
                f"{what}: unexpected or repeated array; an npz holds x, y and optionally "
                "class_names (labels) or target_names (float targets)",
            )
        check_zip_info(info, what, limits)
        infos[name] = info
    for name in ("x", "y"):
        if name not in infos:
            raise IngestError("format", f"{path}: missing array {name!r} (has {sorted(infos)})")

    def member(name: str) -> tuple[IO[bytes], _NpyHeader, str]:
        fh = archive.open(infos[name])
        what = f"{path}: {name}"
        return fh, _npy_header(fh, what), what

    fh, x_header, x_what = member("x")
    with fh:
        shape = _check_image_shape(x_header, x_what, limits)
    fh, y_header, y_what = member("y")
    if y_header.dtype.kind == "f":
        fh.close()
        return _inspect_regression(path, infos, member, x_header, shape, limits)
    if "target_names" in infos:
        fh.close()
        raise IngestError(
            "labels",
            f"{path}: target_names is for float targets (regression); y holds "
            f"{y_header.dtype} labels (use class_names)",
        )
    with fh:
        y = _read_labels(fh, y_header, y_what)
    n, channels, height, width = shape
    if y.shape[0] != n:
        raise IngestError("labels", f"{y_what}: {y.shape[0]} labels for {n} images in x")
    names: list[str] | None = None
    if "class_names" in infos:
        fh, names_header, names_what = member("class_names")
        with fh:
            names = _read_class_names(fh, names_header, names_what, limits)
    low, high = int(y.min()), int(y.max())
    k = len(names) if names is not None else high + 1
    if low < 0 or high >= k:
        bad = int(np.flatnonzero((y < 0) | (y >= k))[0])
        source = f"{k} class_names" if names is not None else "labels"
        raise IngestError(
            "labels",
            f"{y_what}: labels must lie in 0..{k - 1} ({source}); "
            f"label {int(y[bad])} at index {bad}",
        )
    if k > limits.max_classes:
        raise IngestError(
            "too_large",
            f"{y_what}: {k} classes (max label {high}), over max_classes {limits.max_classes}",
        )
    classes = names if names is not None else [str(i) for i in range(k)]
    counts = np.bincount(y, minlength=k)
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise IngestError("classes", f"{y_what}: classes with no samples: {empty}")
    if k < 2:
        raise IngestError("classes", f"{y_what}: {k} class {classes}; at least 2 needed")
    fh, _, _ = member("x")
    with fh:
        moments = _pixel_moments(fh, x_header, shape, x_what)
    return DatasetSummary(
        format="npz",
        samples=n,
        classes=tuple(classes),
        class_counts={name: int(c) for name, c in zip(classes, counts, strict=True)},
        channels=channels,
        min_height=height,
        max_height=height,
        min_width=width,
        max_width=width,
        mean=tuple(float(m) for m in moments.mean),
        std=tuple(float(s) for s in moments.std()),
    )


def _inspect_regression(
    path: Path,
    infos: dict[str, zipfile.ZipInfo],
    member: Callable[[str], tuple[IO[bytes], _NpyHeader, str]],
    x_header: _NpyHeader,
    shape: tuple[int, ...],
    limits: IngestLimits,
) -> DatasetSummary:
    """The summary of an ``.npz`` whose ``y`` holds float targets (a regression set)."""
    n, channels, height, width = shape
    if "class_names" in infos:
        raise IngestError(
            "classes",
            f"{path}: class_names is for integer labels; y holds float targets (regression): "
            "name them with target_names",
        )
    fh, y_header, y_what = member("y")
    with fh:
        y = _read_targets(fh, y_header, y_what, limits)
    if y.shape[0] != n:
        raise IngestError("labels", f"{y_what}: {y.shape[0]} targets for {n} images in x")
    k = y.shape[1]
    names = [str(i) for i in range(k)]
    if "target_names" in infos:
        fh, names_header, names_what = member("target_names")
        with fh:
            names = _read_class_names(fh, names_header, names_what, limits)
        if len(names) != k:
            raise IngestError(
                "labels", f"{names_what}: {len(names)} names for {k} targets (columns of y)"
            )
    fh, _, _ = member("x")
    with fh:
        moments = _pixel_moments(fh, x_header, shape, f"{path}: x")
    return DatasetSummary(
        format="npz",
        samples=n,
        classes=(),
        class_counts={},
        channels=channels,
        min_height=height,
        max_height=height,
        min_width=width,
        max_width=width,
        mean=tuple(float(m) for m in moments.mean),
        std=tuple(float(s) for s in moments.std()),
        task="regression",
        targets=tuple(names),
        target_mean=tuple(float(v) for v in y.mean(axis=0)),
        target_std=tuple(float(v) for v in y.std(axis=0)),
    )
