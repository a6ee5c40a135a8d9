"""LeNet-5 for the serving benchmark's V2 levels: `core.zoo.lenet5` on 1x28x28 FP32 images in
[0, 1], untrained (serving cost does not depend on the weights), published with `core` as the
worker would."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

LENET_MODEL = "lenet5"
LENET_SHAPE = (1, 28, 28)


def publish_lenet5(root: Path) -> int:
    """Publish a seeded, untrained LeNet-5 as `lenet5` under `root`; returns its version."""
    from core.artifacts import make_meta, save_artifact
    from core.datasets import Normalisation
    from core.model import Sequential
    from core.repository import ModelRepository
    from core.zoo import lenet5

    model = Sequential.from_spec(lenet5(), LENET_SHAPE, seed=0)
    meta = make_meta(
        model,
        name=LENET_MODEL,
        class_names=[str(i) for i in range(10)],
        normalisation=Normalisation(mean=[0.1307], std=[0.3081]),
        pixel_range=(0.0, 1.0),
    )
    meta = meta.model_copy(update={"input": dataclasses.replace(meta.input, dtype="float32")})

    def write(directory: Path) -> None:
        save_artifact(directory, model, meta)

    return ModelRepository(root).publish(LENET_MODEL, write)


def lenet_image() -> np.ndarray:
    """One (1, 1, 28, 28) float32 image in [0, 1] (fixed seed)."""
    return np.random.default_rng(0).random((1, *LENET_SHAPE), dtype=np.float32)
