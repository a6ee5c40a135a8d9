"""The model the serving benchmark serves: a small digits CNN, trained and published with
`core` exactly as the worker would (core.training + core.artifacts + core.repository), and its
local batch-1 forward latency, the model's share of the c=1 latency target."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.payload import MODEL


def publish_digits(root: Path) -> int:
    """Train :func:`core.zoo.digits_cnn` for 2 epochs and publish it as `digits` under `root`.

    Returns:
        The published version.
    """
    from core.artifacts import make_meta, save_artifact
    from core.datasets import load_digits
    from core.model import Sequential
    from core.repository import ModelRepository
    from core.training import TrainConfig, fit
    from core.zoo import digits_cnn

    data = load_digits()
    model = Sequential.from_spec(digits_cnn(), data.input_shape, seed=0)
    fit(model, data, TrainConfig.model_validate({"epochs": 2, "validation_split": 0.0}))
    meta = make_meta(
        model,
        name=MODEL,
        class_names=data.class_names,
        normalisation=data.normalisation,
        pixel_range=data.pixel_range,
    )

    def write(directory: Path) -> None:
        save_artifact(directory, model, meta)

    return ModelRepository(root).publish(MODEL, write)


def batch1_latency(models_dir: Path) -> float:
    """Median seconds of one local batch-1 forward pass (preprocess + predict_proba) of the
    newest `digits` version in `models_dir`."""
    from core.artifacts import load_artifact
    from core.repository import ModelRepository

    repo = ModelRepository(models_dir)
    loaded = load_artifact(repo.path(MODEL, repo.versions(MODEL)[-1]))
    c, h, w = loaded.meta.input.shape
    x = np.zeros((1, c, h, w), np.uint8)
    for _ in range(20):
        loaded.predict_proba(x)
    samples = []
    for _ in range(300):
        t0 = time.perf_counter()
        loaded.predict_proba(x)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
