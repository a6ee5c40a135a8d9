"""`cnn.v1.Datasets` messages: a stored data set version as a `Dataset`, and request fields
checked into what `core.datastore` takes."""

from __future__ import annotations

from datetime import UTC

from core.datastore import DIGEST_PREFIX, DataStoreError, StoredDataset, check_dataset_name
from proto.cnn.v1 import datasets_pb2 as pb
from server.errors import InvalidInput


def dataset_message(stored: StoredDataset) -> pb.Dataset:
    """What a client sees of one stored version."""
    meta = stored.meta
    message = pb.Dataset(
        name=stored.name,
        version=stored.version,
        id=DIGEST_PREFIX + stored.digest,
        format=meta.format,
        samples=meta.samples,
        classes=[
            pb.ClassCount(name=name, count=count)
            for name, count in zip(meta.classes, meta.class_counts, strict=True)
        ],
        channels=meta.channels,
        min_height=meta.min_height,
        max_height=meta.max_height,
        min_width=meta.min_width,
        max_width=meta.max_width,
        mean=meta.mean,
        std=meta.std,
        created_at=meta.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        size_bytes=meta.size_bytes,
        source=meta.source,
        task=meta.task,
        targets=meta.targets,
        target_mean=meta.target_mean,
        target_std=meta.target_std,
    )
    if meta.train_samples is not None and meta.test_samples is not None:
        message.train_samples = meta.train_samples
        message.test_samples = meta.test_samples
    return message


def list_name(request: pb.ListDatasetsRequest) -> str | None:
    """The name a List asks for; None lists every name.

    Raises:
        InvalidInput: a malformed name.
    """
    if not request.name:
        return None
    try:
        return check_dataset_name(request.name)
    except DataStoreError as exc:
        raise InvalidInput(f"name: {exc}") from None


def get_reference(request: pb.GetDatasetRequest) -> str:
    """The reference a Get asks for (checked further by `DataStore.resolve`).

    Raises:
        InvalidInput: none given.
    """
    if not request.dataset:
        raise InvalidInput('dataset is required: "name", "name:version" or "sha256:<hex>"')
    return request.dataset


def delete_target(request: pb.DeleteDatasetRequest) -> tuple[str, int]:
    """(name, version) a Delete asks for.

    Raises:
        InvalidInput: a malformed name or a version below 1.
    """
    try:
        name = check_dataset_name(request.name)
    except DataStoreError as exc:
        raise InvalidInput(f"name: {exc}") from None
    if request.version < 1:
        raise InvalidInput(
            f"version must be >= 1 (there is no 'newest' delete), got {request.version}"
        )
    return name, request.version
