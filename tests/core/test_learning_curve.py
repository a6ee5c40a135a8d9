"""The learning curve PNG (its labels: tests/core/test_inspection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ShapeError
from core.learning_curve import learning_curve_figure, learning_curve_png


def test_learning_curve_png_is_written(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": None, "val_accuracy": None},
        {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": None, "val_accuracy": None},
    ]
    path = learning_curve_png(history, tmp_path / "curve.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 5  # something was drawn
        assert im.size == (960, 380)
    learning_curve_figure(history[:1])  # a single epoch still draws
    with pytest.raises(ShapeError):
        learning_curve_figure([])
