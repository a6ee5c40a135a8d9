"""Encoded images -> model input: format and size limits, grey/RGB, resize, pixel range."""

from __future__ import annotations

import numpy as np
import pytest

from core.images import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    image_pixels,
    open_image,
)
from tests.support.images import encode_image


def test_png_pixels_come_back_exactly_as_uint8_chw() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = image_pixels(open_image(encode_image(rgb)), 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb.transpose(2, 0, 1))


def test_rgb_becomes_grey_with_pillows_luma_weights() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 100  # L = 299/1000 * R = 29.9 -> 30
    out = image_pixels(open_image(encode_image(rgb)), 1)
    assert out.shape == (1, 2, 2)
    assert out.ravel().tolist() == [30] * 4


def test_decode_resizes_and_maps_0_255_onto_the_pixel_range() -> None:
    grey = np.zeros((32, 16), np.uint8)
    grey[:, 8:] = 255  # left half black, right half white
    out = decode_image(encode_image(grey), (1, 8, 4), (-1.0, 1.0))
    assert out.shape == (1, 8, 4) and out.dtype == np.float32
    # x = lo + p * (hi - lo) / 255: black -> -1, white -> 1 (bilinear keeps the far columns)
    np.testing.assert_allclose(out[0, :, 0], -1.0)
    np.testing.assert_allclose(out[0, :, 3], 1.0)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0


def test_jpeg_is_accepted() -> None:
    out = decode_image(
        encode_image(np.full((8, 8, 3), 255, np.uint8), "JPEG"), (3, 8, 8), (0.0, 16.0)
    )
    np.testing.assert_allclose(out, 16.0, atol=0.2)


def test_a_side_over_the_limit_is_refused_with_the_size() -> None:
    with pytest.raises(ImageTooLargeError, match=r"upload is 11x4 pixels; each side must be <= 10"):
        open_image(encode_image(np.zeros((4, 11), np.uint8)), "upload", max_side=10)
    try:
        open_image(encode_image(np.zeros((4, 11), np.uint8)), max_side=10)
    except ImageTooLargeError as exc:
        assert (exc.width, exc.height, exc.max_side) == (11, 4, 10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "f is empty; expected PNG or JPEG bytes"),
        (b"GIF89a....", "f could not be decoded as PNG or JPEG"),
        (encode_image(np.zeros((4, 4), np.uint8))[:40], "f could not be decoded as PNG or JPEG"),
    ],
    ids=["empty", "gif", "truncated"],
)
def test_unusable_bytes_are_refused_naming_the_source(data: bytes, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message):
        open_image(data, "f")


def test_only_one_or_three_channels_can_come_from_an_image() -> None:
    with pytest.raises(ImageDecodeError, match="1 \\(grey\\) or 3 \\(RGB\\) channels, not 4"):
        decode_image(encode_image(np.zeros((4, 4), np.uint8)), (4, 4, 4), (0.0, 1.0))
