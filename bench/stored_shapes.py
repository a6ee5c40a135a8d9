"""Benchmark: an uploaded colour image archive, from store to classified images of other sizes.

    python -m bench.stored_shapes [--per-class 150] [--spec examples/shapes-rgb.json]

Generates an archive of coloured shapes (3 classes: square, disc, triangle; random position,
scale, colours; sizes 40..160 px, some grey, PNG and JPEG in turn), stores it in a temporary
`core.datastore.DataStore` as the Datasets service does (`core.ingest.extract_archive`, then
commit), and prints side by side:

- loading (`core.stored_datasets.load_stored_dataset` to the spec's input): images/s, and the
  peak of Python allocations (tracemalloc) against the bytes of the loaded arrays;
- training the spec's architecture (`core.training.fit`): accuracy on the held-out 20%;
- fresh images of sizes never seen in training (24..39 and 170..260 px), classified the way the
  server does it (`core.artifacts.image_input` on the encoded bytes): accuracy.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from core.artifacts import LoadedModel, image_input, make_meta
from core.datastore import DatasetMeta, DataStore, StoredDataset
from core.images import open_image
from core.ingest import extract_archive
from core.model import Sequential
from core.stored_datasets import load_stored_dataset
from core.training import TrainConfig, fit

CLASSES = ("disc", "square", "triangle")
REPO_ROOT = Path(__file__).resolve().parent.parent


def shape_image(kind: str, height: int, width: int, rng: np.random.Generator) -> Image.Image:
    """One ``kind`` shape, randomly placed, scaled and coloured, on a random dark background."""
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    colour = tuple(int(v) for v in rng.integers(120, 256, 3))
    image = Image.new("RGB", (width, height), background)
    side = min(height, width)
    radius = side * rng.uniform(0.2, 0.4)
    cx = width / 2 + rng.uniform(-0.15, 0.15) * width
    cy = height / 2 + rng.uniform(-0.15, 0.15) * height
    draw = ImageDraw.Draw(image)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if kind == "disc":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour
        )
    return image


def encoded(image: Image.Image, index: int) -> tuple[bytes, str]:
    """Every 5th image grey; PNG and JPEG in turn."""
    if index % 5 == 4:
        image = image.convert("L")
    buffer = io.BytesIO()
    fmt, suffix = ("PNG", "png") if index % 2 == 0 else ("JPEG", "jpg")
    image.save(buffer, format=fmt)
    return buffer.getvalue(), suffix


def make_archive(path: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for kind in CLASSES:
            for i in range(per_class):
                height, width = (int(v) for v in rng.integers(40, 161, 2))
                data, suffix = encoded(shape_image(kind, height, width, rng), i)
                archive.writestr(f"{kind}/{i:05d}.{suffix}", data)


def store_archive(store: DataStore, name: str, archive: Path) -> StoredDataset:
    with store.staging() as staged:
        summary = extract_archive(archive, staged / "extracted")
        for child in (staged / "extracted").iterdir():
            child.rename(staged / child.name)
        (staged / "extracted").rmdir()
        meta = DatasetMeta(
            format="images",
            samples=summary.samples,
            classes=summary.classes,
            class_counts=tuple(summary.class_counts[c] for c in summary.classes),
            channels=summary.channels,
            min_height=summary.min_height,
            max_height=summary.max_height,
            min_width=summary.min_width,
            max_width=summary.max_width,
            mean=summary.mean,
            std=summary.std,
            created_at=DatasetMeta.now(),
            source=archive.name,
            size_bytes=archive.stat().st_size,
        )
        return store.commit(staged, name, meta)


def fresh_images(per_class: int, seed: int) -> list[tuple[bytes, int]]:
    """Images of sizes outside the training range (24..39 and 170..260 px)."""
    rng = np.random.default_rng(seed)
    images = []
    for label, kind in enumerate(CLASSES):
        for i in range(per_class):
            low, high = (24, 40) if i % 2 == 0 else (170, 261)
            height, width = (int(v) for v in rng.integers(low, high, 2))
            data, _ = encoded(shape_image(kind, height, width, rng), i)
            images.append((data, label))
    return images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--fresh-per-class", type=int, default=50)
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "examples" / "shapes-rgb.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec: dict[str, Any] = json.loads(args.spec.read_text())
    section = spec["input"]
    shape = (section["channels"], section["height"], section["width"])

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        make_archive(root / "shapes.zip", args.per_class, args.seed)
        stored = store_archive(DataStore(root / "data"), "shapes", root / "shapes.zip")

        tracemalloc.start()
        started = time.perf_counter()
        data = load_stored_dataset(stored, shape, section["resize"])
        load_s = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    arrays = data.x_train.nbytes + (data.x_test.nbytes if data.x_test is not None else 0)
    images = stored.meta.samples
    print(
        f"data set: {images} images, {len(CLASSES)} classes, sizes "
        f"{stored.meta.min_height}..{stored.meta.max_height} x "
        f"{stored.meta.min_width}..{stored.meta.max_width}, input {shape} {section['resize']}"
    )
    print(
        f"load:   {load_s:7.2f} s  {images / load_s:8.0f} images/s   "
        f"peak allocations {peak / 2**20:6.1f} MiB vs arrays {arrays / 2**20:6.1f} MiB "
        f"(ratio {peak / arrays:.2f})"
    )

    config_fields = set(TrainConfig.model_fields)
    config = TrainConfig.model_validate({k: v for k, v in spec.items() if k in config_fields})
    model = Sequential.from_spec(spec["architecture"], data.input_shape, seed=config.seed)
    started = time.perf_counter()
    result = fit(model, data, config)
    fit_s = time.perf_counter() - started
    held_out = data.x_test.shape[0] if data.x_test is not None else 0
    print(
        f"train:  {fit_s:7.2f} s  {config.epochs} epochs   held-out test accuracy "
        f"{result.metrics['test_accuracy']:.3f} ({held_out} images)"
    )

    meta = make_meta(
        model,
        name=spec["name"],
        class_names=data.class_names,
        normalisation=data.normalisation,
        resize=section["resize"],
    )
    loaded = LoadedModel(model, meta)
    fresh = fresh_images(args.fresh_per_class, args.seed + 1)
    batch = np.stack([image_input(open_image(blob), meta.input) for blob, _ in fresh])
    predicted = loaded.predict(batch)
    accuracy = float(np.mean(predicted == np.array([label for _, label in fresh])))
    print(
        f"fresh:  {len(fresh)} images of unseen sizes (24..39, 170..260 px) classified as "
        f"the server does: accuracy {accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
