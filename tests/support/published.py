"""Published source versions for warm-start tests: an untrained model written into a real model
repository the way the worker publishes (`core.repository` + `core.artifacts`), in milliseconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.artifacts import make_meta, save_artifact
from core.datasets import Normalisation
from core.model import Sequential
from core.repository import ModelRepository

#: A small digits CNN (input 1x8x8): layers 0 (conv) and 4 (dense) have parameters.
SOURCE_ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def publish_untrained(
    models_dir: Path,
    name: str = "source",
    architecture: list[dict[str, Any]] | None = None,
    *,
    input_shape: tuple[int, int, int] = (1, 8, 8),
    seed: int = 0,
    pixel_range: tuple[float, float] = (0.0, 16.0),
    normalisation: Normalisation | None = None,
) -> tuple[int, Sequential]:
    """Publish a freshly initialised model as the next version of `name`; returns the version
    and the model."""
    model = Sequential.from_spec(architecture or SOURCE_ARCHITECTURE, input_shape, seed=seed)
    meta = make_meta(
        model,
        name=name,
        class_names=[str(i) for i in range(model.num_classes)],
        normalisation=normalisation or Normalisation(mean=[5.0], std=[6.0]),
        pixel_range=pixel_range,
    )

    def write(directory: Path) -> None:
        save_artifact(directory, model, meta)

    return ModelRepository(models_dir).publish(name, write), model
