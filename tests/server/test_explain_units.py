"""Explain's pure parts: the pictures' layout and colours, and the response limit's setting."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.pictures import Picture, colour_lut
from server import explain_pictures as pictures
from server.errors import LimitExceeded
from server.explainer import ExplainLimits, check_size


def _pixels(picture: Picture) -> np.ndarray:
    with Image.open(io.BytesIO(picture.data)) as image:
        assert image.size == (picture.width, picture.height)
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    ("height", "width", "min_side", "scale"),
    [(8, 8, 128, 16), (28, 28, 128, 5), (224, 224, 128, 1), (2, 3, 128, 16), (4, 4, 32, 8)],
)
def test_scale_reaches_the_minimum_side_up_to_the_cap(
    height: int, width: int, min_side: int, scale: int
) -> None:
    assert pictures.scale_for(height, width, min_side) == scale


def test_grid_places_each_channel_in_its_tile_with_one_colour_scale() -> None:
    # 5 maps of 2x3, channel c filled with the value c: columns ceil(sqrt(5)) = 3, rows 2;
    # scale 2 -> tiles 4 x 6; width 3 * 6 + 2 * 2 = 22, height 2 * 4 + 2 = 10
    maps = np.stack([np.full((2, 3), c, np.float32) for c in range(5)])
    picture = pictures.maps_png(maps, scale=2, columns=pictures.grid_columns(5))
    assert (picture.width, picture.height) == (22, 10)
    rgb = _pixels(picture)
    lut = colour_lut(pictures.MAPS_COLOURS)
    for c in range(5):
        row, col = divmod(c, 3)
        top, left = row * (4 + pictures.GAP), col * (6 + pictures.GAP)
        expected = lut[round(c * 255 / 4)]  # min 0 -> colour 0, max 4 -> colour 255
        assert (rgb[top : top + 4, left : left + 6] == expected).all(), c
    assert (rgb[4:6, :] == pictures.GAP_RGB).all()  # the gap between the two rows
    assert (rgb[6:, 2 * (6 + pictures.GAP) :] == pictures.GAP_RGB).all()  # no sixth tile


def test_saliency_heat_map_runs_from_zero_to_the_maximum() -> None:
    values = np.array([[0.0, 1.0], [0.5, 2.0]], np.float32)
    rgb = _pixels(pictures.saliency_png(values, scale=3))
    lut = colour_lut(pictures.SALIENCY_COLOURS)
    assert rgb.shape == (6, 6, 3)
    assert (rgb[:3, :3] == lut[0]).all() and (rgb[3:, 3:] == lut[255]).all()
    assert (rgb[:3, 3:] == lut[128]).all()  # 1.0 of 2.0: round(127.5) = 128


def test_a_constant_map_is_drawn_in_the_first_colour() -> None:
    rgb = _pixels(pictures.maps_png(np.ones((1, 2, 2), np.float32), scale=1, columns=1))
    assert (rgb == colour_lut(pictures.MAPS_COLOURS)[0]).all()


def test_the_response_limit_names_the_smaller_setting() -> None:
    assert ExplainLimits.of(4, 1000, 5000) == ExplainLimits(4, 1000, "CNN_MAX_EXPLAIN_BYTES")
    limits = ExplainLimits.of(4, 5000, 1000)
    assert limits == ExplainLimits(4, 1000, "CNN_MAX_MESSAGE_BYTES")
    check_size(1000, limits, "the response")
    with pytest.raises(LimitExceeded, match=r"1001 bytes.*1000 bytes \(CNN_MAX_MESSAGE_BYTES\)"):
        check_size(1001, limits, "the response")
