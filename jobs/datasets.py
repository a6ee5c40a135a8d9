"""Submit-time resolution of uploaded data sets: a spec naming ``{"name": "cats"}``,
``{"name": "cats", "version": 2}`` or ``{"id": "sha256:<hex>"}`` is pinned to the stored
content before it is queued.

:func:`pin_dataset` looks the reference up in the `core.datastore.DataStore`, checks that the
architecture fits the data set's input and class count, and returns the spec with

- ``dataset`` = ``{"name", "version", "id"}``, exactly these keys (the Datasets service refuses
  to delete a version a queued or running job names this way), and
- ``input`` = ``{"channels", "height", "width", "resize"}`` in full (the data set's channels
  and common image size where the spec left them out),

so the job, a retry of it and its model artifact all mean the same bytes and the same input.
Pinning is idempotent: the worker pins again what it runs (a payload may have been queued by
any client) and finds the same data set by its id.

Every refusal is an `InvalidSpec` naming the field: ``dataset`` (not stored: the message lists
what is), ``dataset.id`` (a name and version that hold other content), ``input.height`` (a data
set of mixed image sizes and no size in the spec), ``architecture.<i>`` (the model does not
fit: for a regression data set, the last layer must give one output per target), ``task`` (a
regression spec on a classification data set or the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.datasets import DatasetRef
from core.datastore import DIGEST_PREFIX, DatasetMeta, DataStore, DataStoreError, StoredDataset
from jobs.errors import InvalidSpec
from jobs.limits import SpecLimits
from jobs.spec import InputSection, Shape, TrainSpec


def find_stored(ref: DatasetRef, store: DataStore) -> StoredDataset:
    """The stored data set a stored reference names (by id first: that is what was pinned).

    Raises:
        InvalidSpec: nothing stored matches (naming ``dataset`` and listing what is stored), or
            name and version hold other content than ``id``.
    """
    try:
        if ref.id is None:  # then DatasetRef guarantees a name
            name = ref.name or ""
            return store.resolve(name if ref.version is None else (name, ref.version))
        by_id = store.resolve(ref.id)
        if ref.name is None:
            return by_id
        versions = [ref.version] if ref.version is not None else store.versions(ref.name)
        for version in reversed(versions):
            named = store.resolve((ref.name, version))
            if named.digest == by_id.digest:
                return named
        asked = ref.name if ref.version is None else f"{ref.name}:{ref.version}"
    except DataStoreError as exc:  # DatasetNotFound too: its message says what is stored
        raise InvalidSpec([f"dataset: {exc}"]) from None
    raise InvalidSpec(
        [f"dataset.id: {ref.id} is not the content of data set {asked!r} (stored as {by_id.ref})"]
    )


def stored_input(section: InputSection | None, meta: DatasetMeta) -> InputSection:
    """The spec's ``input`` section completed from the data set's meta.

    Raises:
        InvalidSpec: ``input.height`` missing while the data set's images differ in size.
    """
    section = section or InputSection()
    if section.height is None or section.width is None:
        size = meta.image_size
        if size is None:
            raise InvalidSpec(
                [
                    f"input.height: required (with input.width): the data set's images range "
                    f"from {meta.min_height}x{meta.min_width} to {meta.max_height}x"
                    f"{meta.max_width} (height x width); state the model's input size"
                ]
            )
        section = section.model_copy(update={"height": size[0], "width": size[1]})
    if section.channels is None:
        section = section.model_copy(update={"channels": meta.channels})
    return section


def input_shape(section: InputSection) -> Shape:
    """(C, H, W) of a complete section (as `stored_input` returns)."""
    shape = section.shape
    if shape is None:
        raise ValueError(f"input section {section} is not complete")
    return shape


def resolve_dataset(
    spec: TrainSpec, store: DataStore, limits: SpecLimits
) -> tuple[TrainSpec, StoredDataset | None]:
    """`pin_dataset`, also returning the stored data set (None for bundled and file sets)."""
    if not spec.dataset.is_stored:
        return spec, None
    stored = find_stored(spec.dataset, store)
    meta = stored.meta
    if meta.task != spec.task:
        holds = "float targets" if meta.task == "regression" else "class labels"
        raise InvalidSpec(
            [
                f"task: the spec trains {spec.task}, but data set {stored.ref} holds {holds} "
                f'(a {meta.task} data set); set "task": "{meta.task}"'
            ]
        )
    section = stored_input(spec.input, meta)
    spec.check_model(input_shape(section), limits, num_classes=meta.num_outputs)
    pinned = DatasetRef(name=stored.name, version=stored.version, id=f"sha256:{stored.digest}")
    return spec.model_copy(update={"dataset": pinned, "input": section}), stored


def pin_dataset(spec: TrainSpec, store: DataStore, limits: SpecLimits) -> TrainSpec:
    """``spec`` with a stored data set reference pinned (see the module docstring); other
    references are returned unchanged.

    Raises:
        InvalidSpec: naming the field (see the module docstring).
    """
    return resolve_dataset(spec, store, limits)[0]


def trains_on(spec: Mapping[str, Any] | None, name: str, version: int, digest: str) -> bool:
    """Whether a job's spec trains on data set ``name:version`` (content sha256 `digest`).

    A submitted spec names its data set as pinned, ``{"name", "version", "id"}``: versions
    sharing content are told apart by name and version. A spec holding only the id counts for
    every version with that content.
    """
    dataset = spec.get("dataset") if spec is not None else None
    if not isinstance(dataset, Mapping):
        return False
    if "name" in dataset and "version" in dataset:
        return bool(dataset["name"] == name and dataset["version"] == version)
    return bool(dataset.get("id") == DIGEST_PREFIX + digest)
