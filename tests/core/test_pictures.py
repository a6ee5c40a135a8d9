"""Pictures: kernel and feature-map grids, learning curves, ``inspect_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.artifacts import make_meta, save_artifact
from core.datasets import Normalisation
from core.errors import ShapeError
from core.model import Sequential
from core.pictures import (
    MIN_TILE,
    feature_map_grid,
    inspect_model,
    kernel_grid,
    learning_curve_image,
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
    learning_curve_image(history[:1])  # a single epoch still draws
    with pytest.raises(ShapeError):
        learning_curve_image([])


def test_inspect_model_writes_kernels_and_feature_maps_per_conv_layer(tmp_path: Path) -> None:
    arch: list[dict[str, Any]] = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 8, "kernel_size": 3},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ]
    model = Sequential.from_spec(arch, (1, 12, 12))
    meta = make_meta(
        model,
        name="m",
        class_names=["no", "yes"],
        normalisation=Normalisation(mean=[100.0], std=[50.0]),
    )
    save_artifact(tmp_path / "model", model, meta)
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)).save(
        image
    )
    paths = inspect_model(tmp_path / "model", image, tmp_path / "out")
    assert [p.name for p in paths] == [
        "kernels_layer0.png",
        "features_layer0_conv2d.png",
        "features_layer3_conv2d.png",
    ]
    for path in paths:
        with Image.open(path) as im:
            assert im.format == "PNG"
