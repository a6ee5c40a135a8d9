"""Test models for the server suite: a small digits CNN trained with `core`, published into
temporary model repositories exactly as the worker would (core.repository + core.artifacts)."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.artifacts import load_artifact, make_meta, save_artifact
from core.datasets import Dataset, Normalisation, load_digits
from core.evaluation import evaluate
from core.images import ResizeMode
from core.model import Sequential
from core.repository import ModelRepository

DIGITS_ARCHITECTURE: list[dict] = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


@dataclass(frozen=True)
class TrainedArtifact:
    """A saved artifact directory plus the data it was trained on."""

    path: Path
    data: Dataset


def train_digits(directory: Path, *, seed: int = 0, epochs: int = 3) -> TrainedArtifact:
    """Train the small digits CNN for a few epochs and save it to `directory`."""
    from core.training import TrainConfig, fit

    data = load_digits()
    model = Sequential.from_spec(DIGITS_ARCHITECTURE, data.input_shape, seed=seed)
    config = TrainConfig(
        epochs=epochs,
        batch_size=32,
        seed=seed,
        validation_split=0.0,
        optimizer={"type": "adam", "lr": 3e-3},
    )
    result = fit(model, data, config)
    meta = make_meta(
        model,
        name="digits",
        class_names=data.class_names,
        normalisation=data.normalisation,
        pixel_range=data.pixel_range,
        metrics={k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
        dataset={"name": "digits"},
    )
    assert data.x_test is not None and data.y_test is not None
    report = evaluate(
        model, data.x_test, data.y_test, data.class_names, normalisation=data.normalisation
    )
    save_artifact(directory, model, meta, evaluation=report)  # as the worker publishes
    return TrainedArtifact(directory, data)


def publish_copy(root: Path, name: str, artifact_dir: Path) -> int:
    """Publish a copy of `artifact_dir` as the next version of `name` under `root`."""

    def write(tmp: Path) -> None:
        for item in artifact_dir.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)

    return ModelRepository(root).publish(name, write)


def publish_broken(root: Path, name: str, artifact_dir: Path) -> int:
    """Publish a version whose weights do not match their sha256 (must be skipped)."""

    def write(tmp: Path) -> None:
        for item in artifact_dir.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)
        weights = tmp / "weights.npz"
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))

    return ModelRepository(root).publish(name, write)


def local_probabilities(artifact_dir: Path, images: np.ndarray) -> np.ndarray:
    """What `core` computes locally for raw images (N, C, H, W) in the pixel range."""
    return load_artifact(artifact_dir).predict_proba(images)


SLOW_ARCHITECTURE: list[dict] = [
    {"type": "conv2d", "filters": 16, "kernel_size": 5, "padding": "same"},
    {"type": "relu"},
    {"type": "conv2d", "filters": 16, "kernel_size": 5, "padding": "same"},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 2},
]


def save_slow_model(directory: Path) -> Path:
    """An untrained 64x64 model whose forward pass on 64 images takes about a second."""
    model = Sequential.from_spec(SLOW_ARCHITECTURE, (1, 64, 64), seed=0)
    meta = make_meta(
        model,
        name="slow",
        class_names=["a", "b"],
        normalisation=Normalisation(mean=[127.5], std=[64.0]),
        pixel_range=(0.0, 255.0),
    )
    save_artifact(directory, model, meta)
    return directory


IMAGE_ARCHITECTURE: list[dict] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def save_image_model(
    directory: Path,
    *,
    name: str,
    shape: tuple[int, int, int],
    resize: ResizeMode,
    pixel_range: tuple[float, float],
    normalisation: Normalisation,
    seed: int = 0,
) -> Path:
    """An untrained (seeded) model of input `shape` (C, H, W) that resizes encoded images by
    `resize`: enough to hold the server's preprocessing to the local one, whatever it says."""
    model = Sequential.from_spec(IMAGE_ARCHITECTURE, shape, seed=seed)
    meta = make_meta(
        model,
        name=name,
        class_names=["a", "b", "c"],
        normalisation=normalisation,
        pixel_range=pixel_range,
        resize=resize,
    )
    save_artifact(directory, model, meta)
    return directory


def save_lenet5(directory: Path) -> Path:
    """An untrained LeNet-5 (`core.zoo.lenet5`) for 1x28x28 FP32 images in [0, 1]."""
    from core.zoo import lenet5

    model = Sequential.from_spec(lenet5(), (1, 28, 28), seed=0)
    meta = make_meta(
        model,
        name="lenet5",
        class_names=[str(i) for i in range(10)],
        normalisation=Normalisation(mean=[0.5], std=[0.25]),
        pixel_range=(0.0, 1.0),
    )
    meta = meta.model_copy(update={"input": dataclasses.replace(meta.input, dtype="float32")})
    save_artifact(directory, model, meta)
    return directory
