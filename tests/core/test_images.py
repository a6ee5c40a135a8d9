"""Encoded images -> model input: format and size limits, grey/RGB, resize, pixel range."""

from __future__ import annotations

import numpy as np
import pytest

from core import images
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


def test_crop_keeps_the_aspect_ratio_and_cuts_the_centre() -> None:
    # A 40x20 (W x H) image: left quarter red, middle half green, right quarter blue. Brought to
    # 10x10 by "crop", only the centred 20x20 region survives: green (the bilinear filter reads
    # one source pixel beyond the region, so the outer columns keep a trace of red and blue).
    # "stretch" keeps all three bands.
    pixels = np.zeros((3, 20, 40), dtype=np.uint8)
    pixels[0, :, :10] = 255
    pixels[1, :, 10:30] = 255
    pixels[2, :, 30:] = 255
    image = images.pixels_image(pixels)
    cropped = images.image_pixels(image, 3, (10, 10), resize="crop")
    stretched = images.image_pixels(image, 3, (10, 10), resize="stretch")
    assert cropped.shape == stretched.shape == (3, 10, 10)
    assert (cropped[1, :, 1:-1] == 255).all() and cropped[1].min() > 200
    assert cropped[0].max() < 64 and cropped[2].max() < 64
    assert stretched[0, :, 0].min() > 200 and stretched[2, :, -1].min() > 200


def test_crop_and_stretch_agree_when_the_aspect_ratio_already_matches() -> None:
    rng = np.random.default_rng(3)
    image = images.pixels_image(rng.integers(0, 256, (1, 30, 30), dtype=np.uint8))
    np.testing.assert_array_equal(
        images.image_pixels(image, 1, (10, 10), resize="crop"),
        images.image_pixels(image, 1, (10, 10), resize="stretch"),
    )


def test_unknown_resize_mode_is_refused_by_name() -> None:
    image = images.pixels_image(np.zeros((1, 4, 4), dtype=np.uint8))
    with pytest.raises(images.ImageDecodeError, match="resize must be one of"):
        images.image_pixels(image, 1, (2, 2), resize="squash")  # type: ignore[arg-type]


def test_pixels_image_round_trips_grey_and_rgb() -> None:
    rng = np.random.default_rng(4)
    for channels in (1, 3):
        pixels = rng.integers(0, 256, (channels, 5, 7), dtype=np.uint8)
        np.testing.assert_array_equal(
            images.image_pixels(images.pixels_image(pixels), channels), pixels
        )
