"""Encoded images (PNG/JPEG bytes) -> pixel arrays in the layout and range a model takes.

- :func:`read_header`: parse the header only (format, size), refusing other formats, sides over
  ``max_side`` and decompression bombs before a single pixel is decoded. Cheap (microseconds
  whatever the image size): callers can account for the work ahead before doing it.
- :func:`load_image`: decode the pixels of an image :func:`read_header` returned.
- :func:`open_image`: both.
- :func:`image_pixels`: a decoded image as uint8 (C, H, W): grey (C = 1) or RGB (C = 3),
  brought to a size when one is given, by one of :data:`RESIZE_MODES`: ``"stretch"`` resizes
  both sides (bilinear, aspect ratio not kept), ``"crop"`` keeps the aspect ratio: the largest
  centred region of the target's aspect ratio is cut out, then resized (bilinear) to the size.
  The one function every path uses (training data, the server, local predictions), so a
  served answer equals a local one.
- :func:`conform_pixels`: uint8 (C, H, W) arrays (an ``.npz`` data set) through the same
  conversion, so arrays and files end up alike.
- :func:`scale_pixels`: :func:`image_pixels`, then 0..255 rescaled to the model's pixel range
  [lo, hi]: ``x = lo + p * (hi - lo) / 255``, float32 (C, H, W).
- :func:`decode_image`: bytes to model input in one call (:func:`open_image` then
  :func:`scale_pixels`).

Errors name ``what`` (a file path, a request field) as the caller calls the image.
"""

from __future__ import annotations

import io
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin

from core.errors import CnnError

ENCODED_FORMATS = ("JPEG", "PNG")
#: Channel counts an 8-bit image decodes to: grey ("L") or "RGB".
IMAGE_MODES = {1: "L", 3: "RGB"}

ResizeMode = Literal["stretch", "crop"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


class ImageDecodeError(CnnError, ValueError):
    """Bytes that are not a usable PNG/JPEG image: empty, another format, corrupt, no pixels."""


class ImageTooLargeError(ImageDecodeError):
    """An image side is over the caller's ``max_side`` (read from the header, not decoded)."""

    def __init__(self, what: str, width: int, height: int, max_side: int) -> None:
        self.width, self.height, self.max_side = width, height, max_side
        super().__init__(f"{what} is {width}x{height} pixels; each side must be <= {max_side}")


# The formats accepted, by the signature their files start with, with Pillow's parser of each.
# The parsers are called directly rather than through `Image.open`: that one applies Pillow's
# decompression-bomb check as soon as the header is read, before a caller's own (lower) size
# limit could say which limit an oversized image breaks.
_HEADER_PARSERS: tuple[tuple[bytes, type[ImageFile.ImageFile]], ...] = (
    (b"\x89PNG\r\n\x1a\n", PngImagePlugin.PngImageFile),
    (b"\xff\xd8\xff", JpegImagePlugin.JpegImageFile),
)


def read_header(data: bytes, what: str = "image", max_side: int | None = None) -> Image.Image:
    """Parse the header of PNG/JPEG ``data``: a Pillow image whose size and mode are known and
    whose pixels are not decoded yet (:func:`load_image` decodes them).

    Raises:
        ImageTooLargeError: a side is larger than ``max_side``.
        ImageDecodeError: empty, not PNG/JPEG, a corrupt header, 0 pixels, or more pixels than
            Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    if not data:
        raise ImageDecodeError(f"{what} is empty; expected PNG or JPEG bytes")
    parser = next((p for magic, p in _HEADER_PARSERS if data.startswith(magic)), None)
    if parser is None:
        raise ImageDecodeError(f"{what} could not be decoded as PNG or JPEG (unknown format)")
    try:
        image = parser(io.BytesIO(data))
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise ImageDecodeError(
            f"{what} could not be decoded as PNG or JPEG ({type(exc).__name__}: {exc})"
        ) from None
    width, height = image.size
    if max_side is not None and (width > max_side or height > max_side):
        raise ImageTooLargeError(what, width, height, max_side)
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{what} has no pixels ({width}x{height})")
    bomb_limit = Image.MAX_IMAGE_PIXELS
    if bomb_limit is not None and width * height > bomb_limit:
        raise ImageDecodeError(
            f"{what} is {width}x{height} pixels, more than {bomb_limit} (a decompression bomb?)"
        )
    return image


def load_image(image: Image.Image, what: str = "image") -> Image.Image:
    """Decode the pixels of ``image`` (from :func:`read_header`); returns it.

    Raises:
        ImageDecodeError: the pixel data is corrupt or truncated.
    """
    try:
        image.load()
    except Exception as exc:  # as in read_header: Pillow's errors have no common base
        raise ImageDecodeError(
            f"{what} could not be decoded as PNG or JPEG ({type(exc).__name__}: {exc})"
        ) from None
    return image


def open_image(data: bytes, what: str = "image", max_side: int | None = None) -> Image.Image:
    """Decode PNG/JPEG ``data`` into a Pillow image with its pixels loaded.

    Raises:
        ImageTooLargeError: a side is larger than ``max_side`` (nothing decoded yet).
        ImageDecodeError: empty, not PNG/JPEG, a decompression bomb, corrupt, or 0 pixels.
    """
    return load_image(read_header(data, what, max_side), what)


def image_pixels(
    image: Image.Image,
    channels: int,
    size: tuple[int, int] | None = None,
    what: str = "image",
    resize: ResizeMode = "stretch",
) -> np.ndarray:
    """A decoded image as uint8 (C, H, W), C = ``channels``; brought to ``size`` = (H, W) by
    ``resize`` (see the module docstring) when given and different.

    Raises:
        ImageDecodeError: ``channels`` is not 1 or 3, an unknown ``resize``, or Pillow cannot
            convert the image.
    """
    mode = IMAGE_MODES.get(channels)
    if mode is None:
        raise ImageDecodeError(
            f"{what}: an image decodes to 1 (grey) or 3 (RGB) channels, not {channels}"
        )
    if resize not in RESIZE_MODES:
        raise ImageDecodeError(f"{what}: resize must be one of {RESIZE_MODES}, got {resize!r}")
    try:
        converted = image.convert(mode)
        if size is not None and converted.size != (size[1], size[0]):
            target = (size[1], size[0])  # Pillow sizes are (width, height)
            if resize == "crop":
                converted = ImageOps.fit(converted, target, Image.Resampling.BILINEAR)
            else:
                converted = converted.resize(target, Image.Resampling.BILINEAR)
    except Exception as exc:  # as in open_image: Pillow's errors have no common base
        raise ImageDecodeError(
            f"{what} could not be converted to {mode} ({type(exc).__name__}: {exc})"
        ) from None
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[None, :, :] if channels == 1 else pixels.transpose(2, 0, 1)


def pixels_image(pixels: np.ndarray) -> Image.Image:
    """uint8 (C, H, W) pixels, C = 1 or 3, as a Pillow image ("L" or "RGB"): the way arrays
    (an ``.npz`` data set) go through :func:`image_pixels` like decoded files do."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[0] not in IMAGE_MODES:
        raise ImageDecodeError(
            f"pixels must be uint8 (C, H, W) with C 1 or 3, got {pixels.dtype} {pixels.shape}"
        )
    if pixels.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(pixels[0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")


def conform_pixels(
    pixels: np.ndarray, shape: tuple[int, int, int], resize: ResizeMode = "stretch"
) -> np.ndarray:
    """uint8 (C, H, W) pixels brought to ``shape`` = (C', H', W') exactly as a decoded file of
    those pixels would be (:func:`pixels_image` then :func:`image_pixels`); unchanged (the
    same array) when the shape already matches.

    Raises:
        ImageDecodeError: pixels or a target that are not uint8 with 1 or 3 channels.
    """
    if tuple(pixels.shape) == tuple(shape) and pixels.dtype == np.uint8:
        return pixels
    channels, height, width = shape
    return image_pixels(pixels_image(pixels), channels, (height, width), resize=resize)


def scale_pixels(
    image: Image.Image,
    shape: tuple[int, int, int],
    pixel_range: tuple[float, float],
    what: str = "image",
    resize: ResizeMode = "stretch",
) -> np.ndarray:
    """A decoded image -> float32 (C, H, W) = ``shape`` (brought to H x W by ``resize``),
    0..255 mapped onto ``pixel_range``.

    Raises:
        ImageDecodeError: a ``shape`` that does not have 1 or 3 channels, or Pillow cannot
            convert the image.
    """
    channels, height, width = shape
    pixels = image_pixels(image, channels, (height, width), what, resize)
    lo, hi = pixel_range
    out = pixels.astype(np.float32)
    out *= (hi - lo) / 255.0
    out += lo
    return np.clip(out, lo, hi, out=out)


def decode_image(
    data: bytes,
    shape: tuple[int, int, int],
    pixel_range: tuple[float, float],
    *,
    max_side: int | None = None,
    what: str = "image",
    resize: ResizeMode = "stretch",
) -> np.ndarray:
    """PNG/JPEG bytes -> float32 (C, H, W) = ``shape`` (brought to H x W by ``resize``), 0..255
    mapped onto ``pixel_range``.

    Raises:
        ImageTooLargeError: a side is larger than ``max_side`` (checked before decoding).
        ImageDecodeError: unusable bytes, or a model that does not take 1 or 3 channels.
    """
    return scale_pixels(open_image(data, what, max_side), shape, pixel_range, what, resize)
