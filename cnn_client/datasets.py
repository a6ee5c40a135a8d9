"""The data sets part of the client: the typed view of a stored data set, and an upload's
request stream read from disk a chunk at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from proto.cnn.v1 import datasets_pb2 as pb

#: Bytes per Upload chunk: well under the server's default max message size (16 MiB).
DEFAULT_CHUNK_BYTES = 1024 * 1024
#: Upload format by file name suffix (longest first: ".tar.gz" before ".gz").
SUFFIX_FORMATS = {
    ".tar.gz": pb.DATASET_FORMAT_TAR_GZ,
    ".tgz": pb.DATASET_FORMAT_TAR_GZ,
    ".tar": pb.DATASET_FORMAT_TAR,
    ".zip": pb.DATASET_FORMAT_ZIP,
    ".npz": pb.DATASET_FORMAT_NPZ,
}
#: Names accepted for `format=`.
FORMAT_NAMES = {
    "npz": pb.DATASET_FORMAT_NPZ,
    "zip": pb.DATASET_FORMAT_ZIP,
    "tar": pb.DATASET_FORMAT_TAR,
    "tar.gz": pb.DATASET_FORMAT_TAR_GZ,
    "tgz": pb.DATASET_FORMAT_TAR_GZ,
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DatasetInfo:
    """One stored data set version (see `cnn.v1.Dataset` in proto/cnn/v1/datasets.proto).

    `classes` are in label order with `class_counts` beside them; image sizes are ranges in
    pixels; `mean`/`std` per channel in 0..255 units; `train_samples`/`test_samples` are set
    only when the upload came with a train/test split.
    """

    name: str
    version: int
    id: str
    format: str
    samples: int
    classes: list[str]
    class_counts: list[int]
    channels: int
    min_height: int
    max_height: int
    min_width: int
    max_width: int
    mean: list[float]
    std: list[float]
    train_samples: int | None
    test_samples: int | None
    created_at: str
    size_bytes: int
    source: str
    #: "classification", or "regression" (an npz with float targets: `classes` is empty and
    #: `targets` names the K targets, with their mean and std over all samples).
    task: str = "classification"
    targets: list[str] = field(default_factory=list)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


def dataset_info(message: pb.Dataset) -> DatasetInfo:
    return DatasetInfo(
        name=message.name,
        version=message.version,
        id=message.id,
        format=message.format,
        samples=message.samples,
        classes=[c.name for c in message.classes],
        class_counts=[c.count for c in message.classes],
        channels=message.channels,
        min_height=message.min_height,
        max_height=message.max_height,
        min_width=message.min_width,
        max_width=message.max_width,
        mean=list(message.mean),
        std=list(message.std),
        train_samples=message.train_samples if message.HasField("train_samples") else None,
        test_samples=message.test_samples if message.HasField("test_samples") else None,
        created_at=message.created_at,
        size_bytes=message.size_bytes,
        source=message.source,
        task=message.task or "classification",
        targets=list(message.targets),
        target_mean=list(message.target_mean),
        target_std=list(message.target_std),
    )


def upload_format(path: Path, format: str | None) -> pb.DatasetFormat:
    """The format of an upload: `format` by name, else from the file name's suffix.

    Raises:
        ValueError: an unknown format name or suffix.
    """
    if format is not None:
        try:
            return FORMAT_NAMES[format.lower().lstrip(".")]
        except KeyError:
            raise ValueError(
                f"unknown data set format {format!r}; use one of {', '.join(FORMAT_NAMES)}"
            ) from None
    name = path.name.lower()
    for suffix, value in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return value
    raise ValueError(
        f"{path}: cannot tell the format from the name; use a {', '.join(SUFFIX_FORMATS)} "
        "file or give the format"
    )


def file_sha256(path: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> str:
    """sha256 of a file, read a chunk at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def upload_requests(
    path: Path,
    header: pb.UploadHeader,
    chunk_bytes: int,
    on_progress: Progress | None,
) -> Iterator[pb.UploadDatasetRequest]:
    """The header, then the file a chunk at a time; `on_progress(sent, total)` after each chunk
    is handed to gRPC (and once with 0 before the first)."""
    total = header.size_bytes
    yield pb.UploadDatasetRequest(header=header)
    if on_progress is not None:
        on_progress(0, total)
    sent = 0
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            yield pb.UploadDatasetRequest(chunk=chunk)
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, total)
