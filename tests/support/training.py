"""Training specs for tests, and worker settings for a training run in process (no Redis).

:func:`training_spec` holds the defaults every test job shares (one epoch, batch 32, Adam
0.003, seed 0, a 10% validation split); a test names its data and network and overrides the
rest. :func:`local_settings` is what `worker.train.run_training` needs to train from
``root/data`` and publish into ``root/models``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.settings import WorkerSettings


def training_spec(
    name: str, dataset: dict[str, Any], architecture: list[dict[str, Any]], /, **overrides: Any
) -> dict[str, Any]:
    """A job spec (the JSON a client submits) with the shared defaults, ``overrides`` last
    (they may replace the name, data set or architecture too)."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": dataset,
        "architecture": architecture,
        "epochs": 1,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.003},
        "seed": 0,
        "validation_split": 0.1,
    }
    spec.update(overrides)
    return spec


def local_settings(root: Path) -> WorkerSettings:
    """Worker settings with the data directory ``root/data`` and the models ``root/models``."""
    return WorkerSettings.from_env(
        {"CNN_DATA_DIR": str(root / "data"), "CNN_MODELS_DIR": str(root / "models")}
    )
