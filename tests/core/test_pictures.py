"""The picture toolkit (core.pictures): colours, limits, grids, enlargement and PNG.

The layouts made of it are tested with their callers: tests/server/test_explain_units.py
(Explain's PNGs), tests/worker/test_training_events.py (TensorBoard's kernel grids) and
tests/core/test_inspection.py (`cnn inspect`).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from core.errors import ShapeError
from core.pictures import (
    colour_lut,
    diverging_rgb,
    enlarge,
    enlargement,
    grid_shape,
    mosaic,
    sequential_rgb,
    symmetric_limit,
    to_png,
    unit_range,
)


def test_diverging_colours_are_blue_white_red_around_zero() -> None:
    colours = diverging_rgb(np.array([-2.0, -1.0, 0.0, 0.5, 1.0]), limit=1.0)
    assert colours.tolist() == [
        [0, 0, 255],  # beyond -limit: clipped to full blue
        [0, 0, 255],
        [255, 255, 255],
        [255, 128, 128],  # half way to red: 255 * (1 - 0.5) = 127.5 -> 128
        [255, 0, 0],
    ]
    assert (diverging_rgb(np.array([3.0, -3.0]), limit=0.0) == 255).all()  # no scale: white


def test_sequential_colours_run_from_the_first_to_the_last_of_the_map() -> None:
    lut = colour_lut("viridis")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    colours = sequential_rgb(np.array([[-1.0, 0.0], [1.0, 2.0]]), 0.0, 2.0, "viridis")
    # clipped below lo; 1.0 of 0..2 -> round(127.5) = 128; hi -> 255
    assert colours.tolist() == [
        [lut[0].tolist(), lut[0].tolist()],
        [lut[128].tolist(), lut[255].tolist()],
    ]
    constant = sequential_rgb(np.full((2, 2), 5.0), 5.0, 5.0, "viridis")
    assert (constant == lut[0]).all()


def test_the_symmetric_limit_is_the_largest_finite_magnitude() -> None:
    assert symmetric_limit(np.array([0.5, -2.0, 1.0])) == 2.0
    assert symmetric_limit(np.array([np.nan, -3.0, np.inf])) == 3.0
    assert symmetric_limit(np.zeros(4)) == 1.0  # nothing to scale: any scale draws zero
    assert symmetric_limit(np.array([])) == 1.0


def test_unit_range_stretches_to_zero_one_and_a_constant_to_the_middle() -> None:
    assert unit_range(np.array([2.0, 3.0, 6.0])).tolist() == [0.0, 0.25, 1.0]
    assert unit_range(np.full(3, 7.0)).tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("count", "max_columns", "shape"),
    [(1, None, (1, 1)), (5, None, (2, 3)), (16, None, (4, 4)), (100, None, (10, 10)),
     (100, 8, (13, 8)), (0, None, (0, 1))],
)  # fmt: skip
def test_grid_shape_is_near_square_up_to_the_column_limit(
    count: int, max_columns: int | None, shape: tuple[int, int]
) -> None:
    assert grid_shape(count, max_columns) == shape


def test_a_mosaic_places_tiles_in_rows_with_gaps_and_a_margin() -> None:
    tiles = np.arange(1, 6, dtype=np.uint8)[:, None, None] * np.ones((5, 2, 3), np.uint8)
    # 5 tiles of 2x3 in 3 columns, gap 2, margin 1: 2 + 2 * 4 - 2 = 8 high, 2 + 3 * 5 - 2 = 15
    out = mosaic(tiles, columns=3, gap=2, fill=9, margin=1)
    assert out.shape == (8, 15) and out.dtype == np.uint8
    for i in range(5):
        r, c = divmod(i, 3)
        top, left = 1 + r * 4, 1 + c * 5
        assert (out[top : top + 2, left : left + 3] == i + 1).all(), i
    assert (out[0] == 9).all() and (out[:, 4:6] == 9).all()  # margin, gap
    assert (out[5:7, 11:14] == 9).all()  # the unused sixth place


def test_a_mosaic_of_colour_tiles_fills_gaps_with_a_colour_and_floats_with_nan() -> None:
    rgb = mosaic(np.zeros((2, 1, 1, 3), np.uint8), columns=2, gap=1, fill=(64, 65, 66))
    assert rgb.tolist() == [[[0, 0, 0], [64, 65, 66], [0, 0, 0]]]
    grey = mosaic(np.ones((2, 1, 1)), columns=1)
    assert grey.shape == (3, 1) and math.isnan(grey[1, 0]) and grey[2, 0] == 1.0
    with pytest.raises(ShapeError, match="tiles"):
        mosaic(np.zeros((2, 2)), columns=1)


@pytest.mark.parametrize(
    ("height", "width", "min_side", "max_scale", "scale"),
    [(8, 8, 128, None, 16), (2, 3, 128, None, 43), (2, 3, 128, 16, 16), (224, 224, 128, 16, 1),
     (5, 5, 24, None, 5), (3, 3, 24, None, 8)],
)  # fmt: skip
def test_enlargement_reaches_the_minimum_side_up_to_the_cap(
    height: int, width: int, min_side: int, max_scale: int | None, scale: int
) -> None:
    assert enlargement(height, width, min_side, max_scale) == scale


def test_enlarge_turns_each_pixel_into_a_square() -> None:
    pixels = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)  # (H, W, 3)
    big = enlarge(pixels[np.newaxis], 2)  # a leading axis (of tiles) is kept
    assert big.shape == (1, 4, 6, 3)
    assert (big[0, 0:2, 0:2] == pixels[0, 0]).all() and (big[0, 2:4, 4:6] == pixels[1, 2]).all()


@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 3)])
def test_a_png_holds_the_pixels_and_their_size(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    for level in (None, 1):
        picture = to_png(pixels, compress_level=level)
        assert (picture.width, picture.height) == (5, 3)
        with Image.open(io.BytesIO(picture.data)) as image:
            assert image.format == "PNG" and np.array_equal(np.asarray(image), pixels)


def test_a_png_of_another_shape_or_dtype_is_refused_naming_both() -> None:
    with pytest.raises(ShapeError, match=r"\(2, 2, 4\) uint8"):
        to_png(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ShapeError, match="float64"):
        to_png(np.zeros((2, 2)))
