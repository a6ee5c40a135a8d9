"""Pictures: kernel and feature-map grids, learning curves (labels: tests/core/test_inspection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ShapeError
from core.pictures import (
    MIN_TILE,
    feature_map_grid,
    kernel_grid,
    learning_curve_figure,
    learning_curve_png,
)


def test_kernel_grid_has_one_tile_per_filter_enlarged() -> None:
    weight = np.random.default_rng(0).normal(size=(6, 1, 5, 5)).astype(np.float32)
    img = kernel_grid(weight)
    tile = 5 * int(np.ceil(MIN_TILE / 5))
    assert img.size == (3 * (tile + 2) + 2, 2 * (tile + 2) + 2)  # 6 tiles in a 3x2 grid


def test_kernel_grid_of_rgb_kernels_is_in_colour() -> None:
    weight = np.zeros((2, 3, 3, 3), np.float32)
    weight[0, 0] = 1.0  # red channel only
    pixels = np.asarray(kernel_grid(weight))
    inner = pixels[10, 10]
    assert inner[0] == 255 and inner[1] == 0 and inner[2] == 0


def test_feature_map_grid_scales_each_map_to_its_range() -> None:
    maps = np.stack([np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4)])
    pixels = np.asarray(feature_map_grid(maps).convert("L"))
    assert pixels[3, 3] == 128  # a constant map is mid-grey
    with pytest.raises(ShapeError):
        feature_map_grid(np.zeros((4, 4)))


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
