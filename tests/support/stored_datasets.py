"""Uploaded data sets for tests: filled into a real `core.datastore.DataStore` the way the
Datasets service stores an upload (checked by `core.ingest`, then committed), without a server.

Stored layout, as the upload service writes it: an ``.npz`` is ``content/data.npz``; an archive
is the images `core.ingest.extract_archive` writes, ``content/train|test/<class>/<n>.png|.jpg``.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from core.datastore import DatasetMeta, DataStore, StoredDataset
from core.ingest import extract_archive, inspect_npz
from core.stored_datasets import NPZ_FILE
from tests.support.images import encode_image


def store_npz(
    store: DataStore,
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: list[str] | None = None,
    target_names: list[str] | None = None,
) -> StoredDataset:
    """Store ``x``/``y`` (and ``class_names`` or, for float targets ``y``, ``target_names``)
    as an ``.npz`` upload named ``name``."""
    arrays: dict[str, np.ndarray] = {"x": x, "y": np.asarray(y)}
    if class_names is not None:
        arrays["class_names"] = np.array(class_names)
    if target_names is not None:
        arrays["target_names"] = np.array(target_names)
    with store.staging() as staged:
        path = staged / NPZ_FILE
        np.savez(path, **arrays)  # type: ignore[arg-type]
        summary = inspect_npz(path)
        return store.commit(
            staged, name, DatasetMeta.from_summary(summary, "npz", path.stat().st_size)
        )


def store_archive(store: DataStore, name: str, files: dict[str, bytes]) -> StoredDataset:
    """Store a zip archive of ``files`` (entry name -> bytes) named ``name``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in files.items():
            archive.writestr(entry, data)
    with store.staging() as staged, tempfile.TemporaryDirectory() as scratch:
        upload = Path(scratch) / "archive.zip"
        upload.write_bytes(buffer.getvalue())
        summary = extract_archive(upload, staged / "extracted")
        for child in (staged / "extracted").iterdir():
            os.rename(child, staged / child.name)
        (staged / "extracted").rmdir()
        size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
        return store.commit(staged, name, DatasetMeta.from_summary(summary, "archive.zip", size))


def shape_image(kind: str, height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 3) uint8: a filled ``kind`` ("square", "disc" or "bar") in ``colour`` on black,
    scaled with the image (so any size shows the same shape)."""
    rows, cols = np.mgrid[0:height, 0:width]
    u, v = (rows + 0.5) / height - 0.5, (cols + 0.5) / width - 0.5
    if kind == "square":
        inside = (abs(u) < 0.3) & (abs(v) < 0.3)
    elif kind == "disc":
        inside = u**2 + v**2 < 0.3**2
    elif kind == "bar":
        inside = abs(u) < 0.12
    else:
        raise ValueError(f"unknown shape {kind!r}")
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[inside] = colour
    return pixels


SHAPES = ("bar", "disc", "square")


def shapes_archive(
    sizes: list[tuple[int, int]], *, split: bool = False, grey_every: int = 3
) -> dict[str, bytes]:
    """Archive entries: one image of every shape class per size in ``sizes``, PNG and JPEG in
    turn, every ``grey_every``-th one grey; with ``split`` the last size of each class goes
    to ``test/``."""
    files: dict[str, bytes] = {}
    for kind in SHAPES:
        for i, (height, width) in enumerate(sizes):
            pixels = shape_image(kind, height, width, (200, 60 + 40 * i % 150, 30))
            if i % grey_every == grey_every - 1:
                pixels = pixels[:, :, 0]
            fmt = "PNG" if i % 2 == 0 else "JPEG"
            suffix = "png" if fmt == "PNG" else "jpg"
            folder = kind
            if split:
                folder = f"{'test' if i == len(sizes) - 1 else 'train'}/{kind}"
            files[f"{folder}/{i}.{suffix}"] = encode_image(pixels, fmt)
    return files
