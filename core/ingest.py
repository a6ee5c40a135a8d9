"""Validate an uploaded data set on disk before anything trusts it: ``.npz`` files and image-folder
archives (``.zip``, ``.tar``, ``.tar.gz``).

- :func:`inspect_npz`: ``x`` (N, H, W) or (N, C, H, W), C in {1, 3}, uint8 or float32 pixels
  in 0..255; ``y`` (N,) integer labels in ``0..K-1``; optional ``class_names`` (K,) strings
  (without it K = max(y) + 1 and the classes are named "0".."K-1").
- :func:`inspect_archive`: ``<class>/<image>`` or ``train|test/<class>/<image>`` entries, each
  a PNG or JPEG (by content); class ``k`` is the k-th class name in sorted order.
- :func:`extract_archive`: the same checks, and the images written under a new directory as
  ``<split>/<class>/<n>.png|.jpg`` (no name from the archive but class and split), complete or
  not at all.
- :class:`IngestLimits`: every size limit, one frozen object (the server builds it from its
  settings).

Both read the file as a stream, never as a whole: archive entries are visited one at a time,
each image is decoded alone (at most ``max_image_bytes`` encoded, ``max_image_side`` squared
decoded), and pixel statistics accumulate in per-channel running moments (Chan et al.'s
pairwise update in float64), so memory does not grow with the upload.

Grey and colour images may be mixed in one archive: a grey image counts as RGB with three equal
channels when any image is colour. Pillow modes "1", "L" and "LA" are grey (alpha dropped);
every other mode ("RGB", "RGBA", "P" palette, "CMYK", ...) is converted to RGB.

Every refusal is an :class:`IngestError` whose ``kind`` says what went wrong (the server maps
:data:`RESOURCE_KINDS` to RESOURCE_EXHAUSTED, the rest to INVALID_ARGUMENT) and whose message
names the file or entry, the reason and the limit.
"""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import struct
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Literal, Protocol

import numpy as np

from core.durable import fsync_dir, fsync_tree
from core.errors import DatasetError
from core.images import ImageDecodeError, ImageTooLargeError, image_pixels, load_image, read_header

ErrorKind = Literal["too_large", "bomb", "bad_entry", "format", "undecodable", "labels", "classes"]
#: Kinds that mean "over a resource limit" rather than "malformed input".
RESOURCE_KINDS: frozenset[str] = frozenset({"too_large", "bomb"})
ArchiveFormat = Literal["zip", "tar", "tar.gz"]
SPLITS = ("train", "test")
#: Pillow modes counted as one grey channel; all others are converted to RGB.
GREY_MODES = frozenset({"1", "L", "LA"})
NPZ_ARRAYS = ("x", "y", "class_names")
_NPZ_MAX_ENTRIES = 16  # more than enough to name the unexpected ones
MAX_NAME_BYTES = 255  # a class name becomes a directory name later: one path component
MAX_CLASS_NAME_CHARS = 1024  # itemsize bound of a class_names array, checked before reading it
_VALUES_PER_BLOCK = 1 << 20  # pixel values converted to float64 at once (8 MiB)
_ZIP_ENCRYPTED = 0x1  # general purpose flag bit 0
_ZIP_UNIX = 3  # ZipInfo.create_system of unix hosts
_ZIP_END_SIZE = 22  # end of central directory record, without its comment
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_END_SIZE = 56
# An entry's directory record: 46 bytes, its name (a class and a file name, <= 255 bytes each)
# and extra fields; 1 KiB leaves room for all of that.
_ZIP_DIRECTORY_BYTES_PER_ENTRY = 1024


class IngestError(DatasetError):
    """An upload refused: ``kind`` is the category (see :data:`ErrorKind`), the message names
    the file or entry, the reason and the limit."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind

    @property
    def exhausts_resources(self) -> bool:
        """True for limits on size and work (RESOURCE_EXHAUSTED), False for bad input."""
        return self.kind in RESOURCE_KINDS


@dataclass(frozen=True)
class IngestLimits:
    """What an upload may cost. Defaults fit a single-node service; all must be > 0.

    ``max_compression_ratio`` applies to each zip entry (uncompressed / compressed size) and to
    the whole archive (bytes unpacked / bytes on disk); expansion up to ``ratio_floor_bytes``
    is never called a bomb, because tiny archives have large ratios from headers and padding.
    """

    max_bytes: int = 2 * 1024**3  # the uploaded file on disk
    max_files: int = 200_000  # images in an archive, samples in an npz
    max_image_bytes: int = 32 * 1024**2  # one encoded image inside an archive
    max_decoded_pixels: int = 2_000_000_000  # sum of H * W over all images
    max_image_side: int = 4096  # height and width of any image
    max_compression_ratio: float = 100.0
    ratio_floor_bytes: int = 16 * 1024**2
    max_classes: int = 1000

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"IngestLimits.{limit.name} must be a number > 0, got {value!r}")

    def expansion_limit(self, compressed_bytes: int) -> int:
        """The most bytes ``compressed_bytes`` may unpack to before it counts as a bomb."""
        return max(int(self.max_compression_ratio * compressed_bytes), self.ratio_floor_bytes)


@dataclass(frozen=True)
class DatasetSummary:
    """What an upload holds. ``classes`` are in label order (sorted names for archives);
    ``mean``/``std`` are per channel over all pixels, in pixel units (0..255); ``splits`` holds
    the train/test sample counts when an archive has that split, else it is empty."""

    format: Literal["npz", "zip", "tar", "tar.gz"]
    samples: int
    classes: tuple[str, ...]
    class_counts: dict[str, int]
    channels: int
    min_height: int
    max_height: int
    min_width: int
    max_width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able data (lists for tuples) for metadata files and API replies."""
        return {
            "format": self.format,
            "samples": self.samples,
            "classes": list(self.classes),
            "class_counts": dict(self.class_counts),
            "channels": self.channels,
            "min_height": self.min_height,
            "max_height": self.max_height,
            "min_width": self.min_width,
            "max_width": self.max_width,
            "mean": list(self.mean),
            "std": list(self.std),
            "splits": dict(self.splits),
        }


# --- statistics ----------------------------------------------------------------------------


class _Moments:
    """Running count, mean and sum of squared deviations (M2) per channel.

    Blocks merge with Chan et al.'s pairwise update, ``delta = mean_b - mean_a``,
    ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / (n_a + n_b)``: no catastrophic cancellation
    as with raw sums of squares, and each block is converted to float64 alone.
    """

    def __init__(self, channels: int) -> None:
        self.count = np.zeros(channels, dtype=np.int64)
        self.mean = np.zeros(channels, dtype=np.float64)
        self.m2 = np.zeros(channels, dtype=np.float64)

    def add(self, channel: int, values: np.ndarray) -> None:
        """Fold the pixel values of one channel (any shape) in."""
        block = values.astype(np.float64).ravel()
        if block.size:
            mean = float(block.mean())
            self.merge(channel, block.size, mean, float(np.square(block - mean).sum()))

    def merge(self, channel: int, n: int, mean: float, m2: float) -> None:
        n_a = int(self.count[channel])
        total = n_a + n
        delta = mean - self.mean[channel]
        self.mean[channel] += delta * n / total
        self.m2[channel] += m2 + delta * delta * n_a * n / total
        self.count[channel] = total

    def add_image(self, pixels: np.ndarray) -> None:
        """Fold in a (C, H, W) image, a band of rows at a time (bounded float64 copies)."""
        _, height, width = pixels.shape
        rows = max(1, _VALUES_PER_BLOCK // width)
        for channel in range(pixels.shape[0]):
            for top in range(0, height, rows):
                self.add(channel, pixels[channel, top : top + rows])

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


class _ImageStats:
    """Sizes and pixel moments of the images seen so far, grey and colour kept apart."""

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.grey = _Moments(1)
        self.rgb = _Moments(3)
        self.pixels = 0
        self.heights = (0, 0)  # (min, max) over the images seen
        self.widths = (0, 0)

    def add(self, data: bytes, what: str) -> str:
        """Check the header against the limits, then decode ``data`` and fold its pixels in;
        returns the suffix of its format (".png", ".jpg").

        Raises:
            IngestError: too_large (a side, the total decoded pixels) or undecodable.
        """
        try:
            header = read_header(data, what, self.limits.max_image_side)
        except ImageTooLargeError as exc:
            raise IngestError("too_large", str(exc)) from None
        except ImageDecodeError as exc:
            raise IngestError("undecodable", str(exc)) from None
        width, height = header.size
        self.pixels += width * height
        if self.pixels > self.limits.max_decoded_pixels:
            raise IngestError(
                "too_large",
                f"{what}: the images decode to more than {self.limits.max_decoded_pixels} "
                f"pixels in total (max_decoded_pixels)",
            )
        channels = 1 if header.mode in GREY_MODES else 3
        try:
            pixels = image_pixels(load_image(header, what), channels, None, what)
        except ImageDecodeError as exc:
            raise IngestError("undecodable", str(exc)) from None
        (self.grey if channels == 1 else self.rgb).add_image(pixels)
        first = self.heights == (0, 0)
        self.heights = _span(self.heights, height, first)
        self.widths = _span(self.widths, width, first)
        return ".png" if header.format == "PNG" else ".jpg"

    def channels(self) -> int:
        return 3 if self.rgb.count[0] else 1

    def moments(self) -> _Moments:
        """The data set's moments: grey alone, or RGB with each grey pixel counted in all three
        channels (the grey image converted to RGB)."""
        if not self.rgb.count[0]:
            return self.grey
        if self.grey.count[0]:
            for channel in range(3):
                self.rgb.merge(
                    channel, int(self.grey.count[0]), float(self.grey.mean[0]), self.grey.m2[0]
                )
            self.grey = _Moments(1)
        return self.rgb


def _span(span: tuple[int, int], value: int, first: bool) -> tuple[int, int]:
    """(min, max) widened to take in ``value``; ``first`` starts a new span."""
    return (value, value) if first else (min(span[0], value), max(span[1], value))


# --- names and layout ----------------------------------------------------------------------


def _entry_parts(name: str, what: str) -> tuple[str, ...]:
    """An archive entry name -> its path components, leading ``./`` dropped.

    Raises:
        IngestError: bad_entry for absolute paths, ``..``, empty or ``.`` components inside the
            path, backslashes and control characters.
    """
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise IngestError("bad_entry", f"{what}: entry name has control characters")
    if "\\" in name:
        raise IngestError("bad_entry", f"{what}: entry name has a backslash; use '/' paths")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise IngestError("bad_entry", f"{what}: absolute path; entries must be relative")
    parts = name.split("/")
    while parts and parts[0] == ".":
        parts.pop(0)
    if parts and parts[-1] == "":  # "cats/" names a directory
        parts.pop()
    if ".." in parts:
        raise IngestError("bad_entry", f"{what}: '..' in the path; entries must stay inside")
    if any(part in ("", ".") for part in parts):
        raise IngestError("bad_entry", f"{what}: empty or '.' path component")
    return tuple(parts)


def _check_class_name(name: str, what: str) -> None:
    if not name or name.startswith("."):
        raise IngestError("classes", f"{what}: class name {name!r} is empty or hidden")
    if any(ord(char) < 32 or ord(char) == 127 for char in name) or "/" in name or "\\" in name:
        raise IngestError("classes", f"{what}: class name {name!r} has a control char or slash")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise IngestError(
            "classes", f"{what}: class name {name[:40]!r}... is over {MAX_NAME_BYTES} bytes"
        )


class _Layout:
    """Where each image sits: ``<class>/<file>`` (flat) or ``<split>/<class>/<file>``.

    Which of the two an archive uses is decided at the end (a flat archive may have a class
    named "train"), so files are counted by their directory (a 1- or 2-tuple of names).
    """

    def __init__(self, path: Path, limits: IngestLimits) -> None:
        self.path = path
        self.limits = limits
        self.counts: dict[tuple[str, ...], int] = {}
        self.first_entry: dict[tuple[str, ...], str] = {}
        self.dirs: dict[tuple[str, ...], str] = {}

    def add_dir(self, parts: tuple[str, ...], what: str) -> None:
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in SPLITS):
            raise IngestError(
                "bad_entry", f"{what}: directory outside <class>/ or train|test/<class>/"
            )
        if parts:
            self.dirs.setdefault(parts, what)
            self._check_class_count()

    def add_file(self, parts: tuple[str, ...], what: str) -> None:
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[0] not in SPLITS):
            raise IngestError(
                "bad_entry",
                f"{what}: file outside the layout <class>/<image> or train|test/<class>/<image>",
            )
        folder = parts[:-1]
        self.counts[folder] = self.counts.get(folder, 0) + 1
        self.first_entry.setdefault(folder, what)
        self._check_class_count()

    def _check_class_count(self) -> None:
        # A class appears as at most 3 folders (<c>, train/<c>, test/<c>): refuse early at 3x.
        if len(self.counts) + len(self.dirs) > 3 * self.limits.max_classes + 2:
            self._too_many_classes()

    def _too_many_classes(self) -> None:
        raise IngestError(
            "too_large", f"{self.path}: more than {self.limits.max_classes} classes (max_classes)"
        )

    def resolve(self) -> tuple[list[str], dict[str, int], dict[str, int]]:
        """(sorted classes, images per class, images per split).

        Raises:
            IngestError: bad_entry (flat and split layouts mixed), classes (an empty class,
                fewer than two classes, a bad class name), too_large (over max_classes).
        """
        folders = set(self.counts) | set(self.dirs)
        split = any(len(folder) == 2 for folder in folders)
        if split:
            # Every image must then sit in <split>/<class>/, every directory be a split or one.
            stray = sorted(f for f in self.counts if len(f) == 1)
            stray += sorted(f for f in self.dirs if len(f) == 1 and f[0] not in SPLITS)
            if stray:
                where = self.first_entry.get(stray[0]) or self.dirs[stray[0]]
                raise IngestError(
                    "bad_entry",
                    f"{where}: not inside train|test/<class>/, but the archive has a train|test "
                    "split; use one layout throughout",
                )
            folders = {f for f in folders if len(f) == 2}
        classes = sorted({folder[-1] for folder in folders})
        for name in classes:
            _check_class_name(name, str(self.path))
        if len(classes) > self.limits.max_classes:
            self._too_many_classes()
        class_counts = {name: 0 for name in classes}
        split_counts = {name: 0 for name in SPLITS} if split else {}
        for folder, count in self.counts.items():
            class_counts[folder[-1]] += count
            if split:
                split_counts[folder[0]] += count
        for name in classes:
            trained = self.counts.get(("train", name), 0) if split else class_counts[name]
            if not trained:
                place = f"train/{name}/" if split else f"{name}/"
                raise IngestError(
                    "classes", f"{self.path}: class {name!r} has no images in {place}"
                )
        if len(classes) < 2:
            raise IngestError(
                "classes", f"{self.path}: {len(classes)} class(es) {classes}; at least 2 needed"
            )
        return classes, class_counts, split_counts


# --- archives ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One archive member: its name, whether it is a directory, its declared size, and a
    reader of its bytes (valid only until the next entry is produced)."""

    name: str
    is_dir: bool
    size: int
    read: Callable[[int], bytes]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _ExpansionGuard(io.RawIOBase):
    """A decompressed stream that refuses to deliver more than ``limit`` bytes in total: the
    total-ratio check of a compressed archive, enforced while reading, not after."""

    def __init__(self, source: _Readable, limit: int, what: str, ratio: float) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self._what = what
        self._ratio = ratio
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        self.delivered += len(data)
        if self.delivered > self._limit:
            raise IngestError(
                "bomb",
                f"{self._what}: unpacks to more than {self._limit} bytes, over "
                f"max_compression_ratio {self._ratio:g} (a compression bomb?)",
            )
        view[: len(data)] = data
        return len(data)


def _detect_archive(path: Path) -> ArchiveFormat:
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    raise IngestError("format", f"{path}: not a .zip, .tar or .tar.gz archive (by its content)")


def _zip_directory(path: Path) -> tuple[int, int] | None:
    """(entries, central directory bytes) as a zip's end record declares them (zip64
    included), read before ``zipfile`` builds one object per entry; None when there is no end
    record (``zipfile`` then says why).
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        # The end record is 22 bytes plus a comment of at most 65,535 bytes.
        fh.seek(max(0, size - _ZIP_END_SIZE - 0xFFFF))
        tail = fh.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) - end < _ZIP_END_SIZE:
            return None
        count, directory_size = struct.unpack_from("<HI", tail, end + 10)
        locator = end - _ZIP64_LOCATOR_SIZE
        if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
            return int(count), int(directory_size)
        (record_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        fh.seek(record_offset)
        record = fh.read(_ZIP64_END_SIZE)
    if len(record) < _ZIP64_END_SIZE or not record.startswith(b"PK\x06\x06"):
        return None
    count64, directory_size64 = struct.unpack_from("<QQ", record, 32)
    return int(count64), int(directory_size64)


def _open_zip(path: Path, max_entries: int) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)`` once its directory is known to be small enough.

    A central directory of millions of tiny entries fits in an upload of a few hundred MB and
    would cost gigabytes as ``ZipInfo`` objects. ``zipfile`` walks the directory by its size in
    bytes, not by the entry count, so both are bounded (the size by
    ``_ZIP_DIRECTORY_BYTES_PER_ENTRY`` per entry), and the entries are counted again after.
    """
    declared = _zip_directory(path)
    if declared is not None:
        count, directory_size = declared
        if count > max_entries:
            raise IngestError(
                "too_large",
                f"{path}: {count} entries in the zip directory, more than {max_entries}",
            )
        if directory_size > max_entries * _ZIP_DIRECTORY_BYTES_PER_ENTRY:
            raise IngestError(
                "too_large",
                f"{path}: a zip directory of {directory_size} bytes, more than "
                f"{_ZIP_DIRECTORY_BYTES_PER_ENTRY} per entry for {max_entries} entries",
            )
    archive = zipfile.ZipFile(path)
    if len(archive.infolist()) > max_entries:
        archive.close()
        raise IngestError(
            "too_large",
            f"{path}: {len(archive.infolist())} entries in the zip, more than {max_entries}",
        )
    return archive


def _check_zip_info(info: zipfile.ZipInfo, what: str, limits: IngestLimits) -> None:
    """Refuse an entry zipfile should not even open: encrypted, an unusual compression method
    (only stored and deflate), a link or device, or a per-entry ratio over the limit."""
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise IngestError("bad_entry", f"{what}: encrypted entries are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise IngestError(
            "bad_entry",
            f"{what}: compression method {info.compress_type}; only stored and deflate are read",
        )
    # A unix zip keeps st_mode in the high 16 bits; many writers leave its type bits 0.
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode) if info.create_system == _ZIP_UNIX else 0
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise IngestError("bad_entry", f"{what}: {_file_type(mode)}, not a regular file")
    if info.file_size > limits.expansion_limit(info.compress_size):
        raise IngestError(
            "bomb",
            f"{what}: {info.file_size} bytes from {info.compress_size} compressed, over "
            f"max_compression_ratio {limits.max_compression_ratio:g} (a compression bomb?)",
        )


def _zip_entries(path: Path, limits: IngestLimits) -> Iterator[_Entry]:
    # Directory entries are bounded by the classes: <c>/, train/<c>/, test/<c>/, train/, test/.
    max_entries = limits.max_files + 3 * limits.max_classes + 2
    with _open_zip(path, max_entries) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        on_disk = path.stat().st_size
        if total > limits.expansion_limit(on_disk):
            raise IngestError(
                "bomb",
                f"{path}: entries declare {total} bytes from {on_disk} on disk, over "
                f"max_compression_ratio {limits.max_compression_ratio:g} (a compression bomb?)",
            )
        for info in infos:
            _check_zip_info(info, f"{path}: {info.filename}", limits)
            if info.is_dir():
                yield _Entry(info.filename, True, 0, _no_data)
                continue
            with archive.open(info) as member:
                yield _Entry(info.filename, False, info.file_size, member.read)


def _tar_entries(path: Path, gzipped: bool, limits: IngestLimits) -> Iterator[_Entry]:
    with path.open("rb") as raw:
        source: IO[bytes] = raw
        if gzipped:
            unpacked = gzip.GzipFile(fileobj=raw, mode="rb")
            limit = limits.expansion_limit(path.stat().st_size)
            source = io.BufferedReader(
                _ExpansionGuard(unpacked, limit, str(path), limits.max_compression_ratio)
            )
        # "r|": a forward-only stream, so bytes are counted as they are unpacked.
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for member in archive:
                what = f"{path}: {member.name}"
                if member.isdir():
                    yield _Entry(member.name, True, 0, _no_data)
                elif member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    reader = archive.extractfile(member)
                    if reader is None:  # unreachable for regular files; keeps mypy honest
                        raise IngestError("bad_entry", f"{what}: has no data")
                    yield _Entry(member.name, False, member.size, reader.read)
                else:
                    raise IngestError("bad_entry", f"{what}: {_tar_type(member)}, not a file")


def _no_data(size: int) -> bytes:
    return b""


def _tar_type(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    if member.issparse():
        return "a sparse file"
    return f"an entry of tar type {member.type!r}"


def _file_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    return f"file mode {oct(mode)}"


def _check_size(path: Path, limits: IngestLimits) -> None:
    if not path.is_file():
        raise IngestError("format", f"{path}: no such file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise IngestError(
            "too_large", f"{path}: {size} bytes, over the upload limit of {limits.max_bytes}"
        )


def inspect_archive(path: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an image-folder archive entry by entry and summarise it; nothing is extracted.

    Args:
        path: a ``.zip``, ``.tar`` or ``.tar.gz`` file (recognised by content, not name).
        limits: the limits to hold it to (defaults: :class:`IngestLimits`).

    Raises:
        IngestError: the first problem found (see the module docstring for the kinds).
    """
    return _scan_archive(Path(path), limits or IngestLimits(), keep=None)


def extract_archive(path: Path, dest: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an image-folder archive as :func:`inspect_archive` does and write its images to
    ``dest/<split>/<class>/<n>.png|.jpg`` (split "train" for an archive without one).

    Nothing of the archive's file names is used but the class and split names, which are
    checked: files are numbered ``000000``, ``000001``... in archive order, with the suffix of
    their content. Images go into a hidden sibling ``.<dest name>.tmp-<random>``, which is
    fsynced and renamed to ``dest`` once everything passed: ``dest`` then holds a complete,
    valid data set or does not exist.

    Raises:
        IngestError: as :func:`inspect_archive` (nothing is left behind).
        FileExistsError: ``dest`` exists already.
    """
    path, dest, limits = Path(path), Path(dest), limits or IngestLimits()
    if dest.exists():
        raise FileExistsError(f"{dest} exists already; extract_archive writes a new directory")
    staging = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
    (staging / "files").mkdir(parents=True)
    placed: list[tuple[tuple[str, ...], str]] = []  # (folder, file name in staging/files)

    def keep(folder: tuple[str, ...], data: bytes, suffix: str) -> None:
        name = f"{len(placed):06d}{suffix}"
        with (staging / "files" / name).open("xb") as fh:
            fh.write(data)
        placed.append((folder, name))

    try:
        summary = _scan_archive(path, limits, keep)
        for folder, name in placed:
            target = staging / Path(*folder) if summary.splits else staging / "train" / folder[0]
            target.mkdir(parents=True, exist_ok=True)
            (staging / "files" / name).rename(target / name)
        (staging / "files").rmdir()
        fsync_tree(staging)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    return summary


def _scan_archive(
    path: Path,
    limits: IngestLimits,
    keep: Callable[[tuple[str, ...], bytes, str], None] | None,
) -> DatasetSummary:
    """Visit every entry once, checking it; hand each image (its folder, bytes and suffix) to
    ``keep`` once it has decoded, then check the layout as a whole and summarise."""
    _check_size(path, limits)
    archive_format = _detect_archive(path)
    entries = (
        _zip_entries(path, limits)
        if archive_format == "zip"
        else _tar_entries(path, archive_format == "tar.gz", limits)
    )
    layout = _Layout(path, limits)
    stats = _ImageStats(limits)
    seen: set[tuple[str, ...]] = set()
    files = 0
    try:
        for entry in entries:
            what = f"{path}: {entry.name}"
            parts = _entry_parts(entry.name, what)
            if parts in seen:
                raise IngestError("bad_entry", f"{what}: the archive holds this path twice")
            seen.add(parts)
            if entry.is_dir:
                layout.add_dir(parts, what)
                continue
            files += 1
            if files > limits.max_files:
                raise IngestError(
                    "too_large", f"{path}: more than {limits.max_files} files (max_files)"
                )
            layout.add_file(parts, what)
            if entry.size > limits.max_image_bytes:
                raise IngestError(
                    "too_large",
                    f"{what}: {entry.size} bytes, over max_image_bytes {limits.max_image_bytes}",
                )
            data = entry.read(limits.max_image_bytes + 1)
            suffix = stats.add(data, what)
            if keep is not None:
                keep(parts[:-1], data, suffix)
    # Other OSErrors (a disk that fails to read the upload or to write an image) are the
    # server's problem, not the upload's: they propagate as they are.
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise IngestError(
            "format", f"{path}: corrupt {archive_format} archive ({type(exc).__name__}: {exc})"
        ) from None
    classes, class_counts, split_counts = layout.resolve()
    moments = stats.moments()
    return DatasetSummary(
        format=archive_format,
        samples=sum(class_counts.values()),
        classes=tuple(classes),
        class_counts=class_counts,
        channels=stats.channels(),
        min_height=stats.heights[0],
        max_height=stats.heights[1],
        min_width=stats.widths[0],
        max_width=stats.widths[1],
        mean=tuple(float(m) for m in moments.mean),
        std=tuple(float(s) for s in moments.std()),
        splits=split_counts,
    )


# --- npz -----------------------------------------------------------------------------------


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
            "labels", f"{what}: must be 1-D integer labels, got {header.dtype} {header.shape}"
        )
    data = _read_exact(fh, header.shape[0] * header.dtype.itemsize, what)
    return np.frombuffer(data, dtype=header.dtype).astype(np.int64)


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
        _check_class_name(name, what)
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
            f"{what}: images are {width}x{height}; each side must be <= {limits.max_image_side}",
        )
    if n * height * width > limits.max_decoded_pixels:
        raise IngestError(
            "too_large",
            f"{what}: {n * height * width} pixels, over max_decoded_pixels "
            f"{limits.max_decoded_pixels}",
        )
    return shape


def _pixel_moments(
    fh: IO[bytes], header: _NpyHeader, shape: tuple[int, ...], what: str
) -> _Moments:
    """Stream x's data a band of rows at a time (never crossing a channel plane) into moments;
    float pixels must be finite and within 0..255."""
    n, channels, height, width = shape
    # The most rows that divide H and fit a block (at least one row): bands then never straddle
    # two channel planes, so each band belongs to one channel.
    rows = max(
        d
        for d in range(1, height + 1)
        if height % d == 0 and (d == 1 or d * width <= _VALUES_PER_BLOCK)
    )
    band_bytes = rows * width * header.dtype.itemsize
    moments = _Moments(channels)
    for band in range(n * channels * (height // rows)):
        values = np.frombuffer(_read_exact(fh, band_bytes, what), dtype=header.dtype)
        if header.dtype.kind == "f" and not (
            np.isfinite(values).all() and values.min() >= 0 and values.max() <= 255
        ):
            sample = band // (channels * (height // rows))
            raise IngestError(
                "format", f"{what}: sample {sample} has values outside 0..255 (or NaN/inf)"
            )
        plane = band // (height // rows)
        moments.add(plane % channels, values)
    return moments


def inspect_npz(path: Path, limits: IngestLimits | None = None) -> DatasetSummary:
    """Check an ``.npz`` upload array by array and summarise it; arrays are streamed, never
    loaded whole, and never unpickled.

    Raises:
        IngestError: the first problem found (see the module docstring for the kinds).
    """
    limits = limits or IngestLimits()
    path = Path(path)
    _check_size(path, limits)
    try:
        with _open_zip(path, _NPZ_MAX_ENTRIES) as archive:
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
                "class_names",
            )
        _check_zip_info(info, what, limits)
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
