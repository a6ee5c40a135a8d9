"""A data set a new user might bring: coloured shapes on coloured backgrounds, any size.

Three classes told apart by shape alone (``circle``, ``square``, ``triangle``); the shape's and
the background's colours are random (kept apart in brightness, so every shape is visible in
grey too), the image's size and aspect ratio vary, and the shape sits in the centred square of
the image, so both resize modes ("stretch" and "crop") keep all of it. Images come as PNG or
JPEG, in an image-folder archive (``.zip``, ``.tar``, ``.tar.gz``, optionally with a
``train/``/``test/`` split) or as an ``.npz`` of one size.

Everything is seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class ShapeImage:
    """One generated image: its class, pixels (H, W, 3) uint8 and encoded bytes."""

    label: int
    pixels: np.ndarray
    encoded: bytes
    suffix: str  # ".png" or ".jpg"

    @property
    def class_name(self) -> str:
        return CLASSES[self.label]


def draw_shape(label: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: shape ``CLASSES[label]`` inside the centred square of the image."""
    background = rng.integers(0, 256, 3)
    foreground = rng.integers(0, 256, 3)
    # Keep the two apart: a shape must differ from its background in brightness by >= 100.
    while abs(int(foreground.mean()) - int(background.mean())) < 100:
        foreground = rng.integers(0, 256, 3)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(image)
    side = min(height, width)
    extent = side * rng.uniform(0.55, 0.85)  # the shape's size within the square
    cy = height / 2 + rng.uniform(-0.08, 0.08) * side
    cx = width / 2 + rng.uniform(-0.08, 0.08) * side
    half = extent / 2
    fill = tuple(int(v) for v in foreground)
    box = (cx - half, cy - half, cx + half, cy + half)
    kind = CLASSES[label]
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)
    return np.asarray(image, dtype=np.uint8)


def shape_images(
    count: int,
    *,
    seed: int,
    sides: tuple[int, int] = (24, 72),
    max_aspect: float = 1.6,
    jpeg_every: int = 3,
    grey_every: int = 0,
) -> Iterator[ShapeImage]:
    """``count`` images, classes in turn; sides drawn from ``sides`` (inclusive) with an aspect
    ratio up to ``max_aspect``; every ``jpeg_every``-th image a JPEG (quality 92), the rest PNG;
    every ``grey_every``-th image (0: none) saved as a grey ("L") file."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % len(CLASSES)
        short = int(rng.integers(sides[0], sides[1] + 1))
        long = min(int(short * rng.uniform(1.0, max_aspect)), sides[1])
        height, width = (short, long) if rng.random() < 0.5 else (long, short)
        pixels = draw_shape(label, height, width, rng)
        image = Image.fromarray(pixels)
        if grey_every and index % grey_every == grey_every - 1:
            image = image.convert("L")
            pixels = np.repeat(np.asarray(image)[:, :, None], 3, axis=2)
        buffer = io.BytesIO()
        if jpeg_every and index % jpeg_every == jpeg_every - 1:
            image.save(buffer, format="JPEG", quality=92)
            suffix = ".jpg"
        else:
            image.save(buffer, format="PNG")
            suffix = ".png"
        yield ShapeImage(label, pixels, buffer.getvalue(), suffix)


def write_archive(
    path: Path, images: dict[str, list[ShapeImage]] | list[ShapeImage], fmt: str = "zip"
) -> Path:
    """An image-folder archive at ``path``: ``<class>/<n><suffix>`` entries, or
    ``<split>/<class>/...`` when ``images`` maps split names to images. ``fmt``: "zip", "tar"
    or "tar.gz"."""
    splits = images if isinstance(images, dict) else {"": images}
    entries = [
        (f"{split}/" if split else "") + f"{image.class_name}/{index:05d}{image.suffix}"
        for split, items in splits.items()
        for index, image in enumerate(items)
    ]
    payloads = [image.encoded for items in splits.values() for image in items]
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in zip(entries, payloads, strict=True):
                archive.writestr(name, data)
        return path
    mode = {"tar": "w", "tar.gz": "w:gz"}[fmt]
    with tarfile.open(path, mode) as archive:
        for name, data in zip(entries, payloads, strict=True):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_npz(
    path: Path, count: int, *, seed: int, side: int = 40, dtype: str = "uint8"
) -> tuple[np.ndarray, np.ndarray]:
    """An ``.npz`` upload: ``x`` (N, 3, side, side) ``dtype`` in 0..255, ``y`` labels and
    ``class_names``; returns (x, y)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    x = np.stack([draw_shape(int(label), side, side, rng).transpose(2, 0, 1) for label in labels])
    y = labels.astype(np.int64)
    np.savez(path, x=x.astype(dtype), y=y, class_names=np.array(CLASSES))
    return x, y
