"""A regression job run end to end by the worker's training function (no Redis): a generated
disc data set stored as an ``.npz`` upload, trained by `worker.train.run_training` and published
into a model repository, as a worker does it. Shared by the worker and server tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.datastore import DataStore
from core.stored_datasets import load_stored_dataset
from jobs.spec import parse_spec
from tests.support.discs import DISC_ARCHITECTURE, DISC_TARGETS, make_discs
from tests.support.stored_datasets import store_npz
from tests.support.training import local_settings, training_spec
from worker.train import TrainOutcome, run_training

#: What the disc model reaches on its held-out 20% (measured: about 0.97; see the README).
DISC_MIN_R2 = 0.9
DISC_SAMPLES = 800


def disc_spec(**overrides: Any) -> dict[str, Any]:
    """The training spec of the disc regression (centre x, y and radius of 32x32 discs)."""
    return training_spec(
        "discs",
        {"name": "discs"},
        DISC_ARCHITECTURE,
        **{"task": "regression", "loss": "mse", "epochs": 10, **overrides},
    )


@dataclass(frozen=True)
class DiscRun:
    """The published model of a disc run, with the held-out split it was evaluated on."""

    outcome: TrainOutcome
    models_dir: Path
    x_test: np.ndarray  # (N, 1, 32, 32) uint8
    y_test: np.ndarray  # (N, 3) float32: cx, cy, r in px


def train_discs(root: Path, **overrides: Any) -> DiscRun:
    """Store the disc set under ``root/data``, train and publish under ``root/models``."""
    settings = local_settings(root)
    x, y = make_discs(DISC_SAMPLES, seed=0)
    store = DataStore(settings.data_dir)
    stored = store_npz(store, "discs", x, y, target_names=list(DISC_TARGETS))
    outcome = run_training(parse_spec(disc_spec(**overrides)), settings, job_id="discs-job")
    data = load_stored_dataset(stored, (1, 32, 32), "stretch")
    assert data.x_test is not None and data.y_test is not None
    return DiscRun(outcome, settings.models_dir, data.x_test, data.y_test)
