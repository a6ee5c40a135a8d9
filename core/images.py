"""Encoded images (PNG/JPEG bytes) -> pixel arrays in the layout and range a model takes.

- :func:`open_image`: decode, refusing other formats, decompression bombs and (when given a
  limit) images with a side over ``max_side``, checked from the header before any pixel data
  is decoded.
- :func:`image_pixels`: a decoded image as uint8 (C, H, W): grey (C = 1) or RGB (C = 3),
  resized (bilinear) when a size is given.
- :func:`decode_image`: both, then 0..255 rescaled to the model's pixel range [lo, hi]:
  ``x = lo + p * (hi - lo) / 255``, float32 (C, H, W).

Errors name ``what`` (a file path, a request field) as the caller calls the image.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from core.errors import CnnError

ENCODED_FORMATS = ("JPEG", "PNG")
#: Channel counts an 8-bit image decodes to: grey ("L") or "RGB".
IMAGE_MODES = {1: "L", 3: "RGB"}


class ImageDecodeError(CnnError, ValueError):
    """Bytes that are not a usable PNG/JPEG image: empty, another format, corrupt, no pixels."""


class ImageTooLargeError(ImageDecodeError):
    """An image side is over the caller's ``max_side`` (read from the header, not decoded)."""

    def __init__(self, what: str, width: int, height: int, max_side: int) -> None:
        self.width, self.height, self.max_side = width, height, max_side
        super().__init__(f"{what} is {width}x{height} pixels; each side must be <= {max_side}")


def open_image(data: bytes, what: str = "image", max_side: int | None = None) -> Image.Image:
    """Decode PNG/JPEG ``data`` into a Pillow image with its pixels loaded.

    Raises:
        ImageTooLargeError: a side is larger than ``max_side`` (nothing decoded yet).
        ImageDecodeError: empty, not PNG/JPEG, a decompression bomb, corrupt, or 0 pixels.
    """
    if not data:
        raise ImageDecodeError(f"{what} is empty; expected PNG or JPEG bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ENCODED_FORMATS)
            width, height = image.size
            if max_side is not None and (width > max_side or height > max_side):
                raise ImageTooLargeError(what, width, height, max_side)
            if width < 1 or height < 1:
                raise ImageDecodeError(f"{what} has no pixels ({width}x{height})")
            image.load()
    except ImageDecodeError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise ImageDecodeError(
            f"{what} could not be decoded as PNG or JPEG ({type(exc).__name__}: {exc})"
        ) from None
    return image


def image_pixels(
    image: Image.Image, channels: int, size: tuple[int, int] | None = None, what: str = "image"
) -> np.ndarray:
    """A decoded image as uint8 (C, H, W), C = ``channels``; resized to ``size`` = (H, W)
    (bilinear) when given and different.

    Raises:
        ImageDecodeError: ``channels`` is not 1 or 3, or Pillow cannot convert the image.
    """
    mode = IMAGE_MODES.get(channels)
    if mode is None:
        raise ImageDecodeError(
            f"{what}: an image decodes to 1 (grey) or 3 (RGB) channels, not {channels}"
        )
    try:
        converted = image.convert(mode)
        if size is not None and converted.size != (size[1], size[0]):
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except Exception as exc:  # as in open_image: Pillow's errors have no common base
        raise ImageDecodeError(
            f"{what} could not be converted to {mode} ({type(exc).__name__}: {exc})"
        ) from None
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[None, :, :] if channels == 1 else pixels.transpose(2, 0, 1)


def decode_image(
    data: bytes,
    shape: tuple[int, int, int],
    pixel_range: tuple[float, float],
    *,
    max_side: int | None = None,
    what: str = "image",
) -> np.ndarray:
    """PNG/JPEG bytes -> float32 (C, H, W) = ``shape``, 0..255 mapped onto ``pixel_range``.

    Raises:
        ImageTooLargeError: a side is larger than ``max_side`` (checked before decoding).
        ImageDecodeError: unusable bytes, or a model that does not take 1 or 3 channels.
    """
    channels, height, width = shape
    pixels = image_pixels(open_image(data, what, max_side), channels, (height, width), what)
    lo, hi = pixel_range
    out = pixels.astype(np.float32)
    out *= (hi - lo) / 255.0
    out += lo
    return np.clip(out, lo, hi, out=out)
