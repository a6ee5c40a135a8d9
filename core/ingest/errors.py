"""Errors, limits and the summary every ingest function shares."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from core.errors import DatasetError

ErrorKind = Literal["too_large", "bomb", "bad_entry", "format", "undecodable", "labels", "classes"]
#: Kinds that mean "over a resource limit" rather than "malformed input".
RESOURCE_KINDS: frozenset[str] = frozenset({"too_large", "bomb"})
MAX_NAME_BYTES = 255  # a class name becomes a directory name later: one path component


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
    #: "regression" for an ``.npz`` with float ``y``: then ``classes`` is empty and the K
    #: targets are named in ``targets`` with their mean and std over all samples.
    task: Literal["classification", "regression"] = "classification"
    targets: tuple[str, ...] = ()
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()

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
            "task": self.task,
            "targets": list(self.targets),
            "target_mean": list(self.target_mean),
            "target_std": list(self.target_std),
        }


def check_class_name(name: str, what: str) -> None:
    if not name or name.startswith("."):
        raise IngestError("classes", f"{what}: class name {name!r} is empty or hidden")
    if any(ord(char) < 32 or ord(char) == 127 for char in name) or "/" in name or "\\" in name:
        raise IngestError("classes", f"{what}: class name {name!r} has a control char or slash")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise IngestError(
            "classes", f"{what}: class name {name[:40]!r}... is over {MAX_NAME_BYTES} bytes"
        )


def check_size(path: Path, limits: IngestLimits) -> None:
    if not path.is_file():
        raise IngestError("format", f"{path}: no such file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise IngestError(
            "too_large",
            f"{path}: {size} bytes, over the upload limit of {limits.max_bytes} (max_bytes)",
        )
