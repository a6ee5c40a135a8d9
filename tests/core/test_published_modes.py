"""Published model versions are readable by other users, whatever the publisher's umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.artifacts import LEARNING_CURVE_PNG, MODEL_JSON, WEIGHTS_NPZ, make_meta, save_artifact
from core.datasets import Normalisation
from core.durable import atomic_write_bytes
from core.model import Sequential
from core.repository import ModelRepository

ARCH = [{"type": "flatten"}, {"type": "dense", "units": 2}]
HISTORY = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.5, "accuracy": 0.7}]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_artifact(directory: Path) -> None:
    model = Sequential.from_spec(ARCH, (1, 2, 2), seed=0)
    normalisation = Normalisation(mean=[0.0], std=[1.0])
    meta = make_meta(model, name="tiny", class_names=["a", "b"], normalisation=normalisation)
    save_artifact(directory, model, meta, history=HISTORY)


@pytest.mark.usefixtures("umask")
def test_a_published_version_is_world_readable_even_under_umask_077(tmp_path: Path) -> None:
    os.umask(0o077)
    repo = ModelRepository(tmp_path)
    version = repo.publish("tiny", _write_artifact)
    version_dir = repo.path("tiny", version)

    assert _mode(tmp_path / "tiny") == 0o755
    assert _mode(version_dir) == 0o755
    for name in (MODEL_JSON, WEIGHTS_NPZ, LEARNING_CURVE_PNG):
        assert _mode(version_dir / name) == 0o644, name


@pytest.mark.usefixtures("umask")
def test_publishing_leaves_an_existing_model_directory_as_the_operator_made_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "tiny").mkdir(mode=0o750)
    ModelRepository(tmp_path).publish("tiny", _write_artifact)
    assert _mode(tmp_path / "tiny") == 0o750


@pytest.mark.usefixtures("umask")
def test_an_atomic_write_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "shared", b"x")
    os.umask(0o027)
    atomic_write_bytes(tmp_path / "group", b"x")

    assert _mode(tmp_path / "shared") == 0o644
    assert _mode(tmp_path / "group") == 0o640
