"""Turn client pixels into the model's input: validated (N, C, H, W) float32 in pixel range.

Wire-format agnostic: the codecs hand over numpy arrays or encoded image bytes plus the name
of the field they came from, which every error message repeats.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from core import images as core_images
from core.artifacts import image_input
from server.errors import InvalidInput, LimitExceeded

if TYPE_CHECKING:
    from PIL import Image

    from core.artifacts import InputSpec

_UINT8 = np.dtype(np.uint8)
# Up to this many bytes, `bytes.translate` (~1 ns/byte, no fixed cost) beats numpy's min/max
# (~0.8 us fixed, then much faster per byte); the measured crossover is about 3 KiB.
_BYTE_SCAN_MAX = 2048


def check_pixels(x: np.ndarray, spec: InputSpec, field: str) -> np.ndarray:
    """Validate values of a raw (N, C, H, W) uint8/float array; return float32 (pixel range).

    Raises:
        InvalidInput: NaN/infinity, or values outside [pixel_min, pixel_max]; names `field`.
    """
    validate_pixels(x, spec, field)
    return x.astype(np.float32, copy=False)


def validate_pixels(x: np.ndarray, spec: InputSpec, field: str) -> None:
    """The checks of `check_pixels` without the float32 conversion.

    Accepts and rejects exactly what `check_pixels_reference` does, with its error message,
    but cheaply for the small arrays of a typical request: uint8 needs no reduction when
    every byte value is in range, and a byte scan instead of numpy's reductions (~0.8 us
    fixed cost each) when it is small; floats take one min and one max (NaN propagates
    through both) and only fall back to the exact per-element check when that fails.

    Raises:
        InvalidInput: NaN/infinity, or values outside [pixel_min, pixel_max]; names `field`.
    """
    dtype = x.dtype
    pixel_min, pixel_max = spec.pixel_range
    if dtype == _UINT8:
        allowed = _uint8_in_range(pixel_min, pixel_max)
        if allowed is not None and x.size:
            if x.nbytes <= _BYTE_SCAN_MAX:
                bad = bool(x.tobytes().translate(None, allowed))
            else:
                bad = (pixel_min > 0 and float(x.min()) < pixel_min) or (
                    pixel_max < 255 and float(x.max()) > pixel_max
                )
            if bad:
                check_pixels_reference(x, spec, field)  # raises, naming the actual range
    elif dtype.kind == "f":
        if not x.size:
            return
        lo, hi = float(x.min()), float(x.max())
        if not (pixel_min <= lo and hi <= pixel_max and math.isfinite(lo) and math.isfinite(hi)):
            check_pixels_reference(x, spec, field)  # raises: NaN/inf first, then range
    else:
        check_pixels_reference(x, spec, field)


def check_pixels_reference(x: np.ndarray, spec: InputSpec, field: str) -> np.ndarray:
    """The readable twin of `check_pixels` (same signature and result); the test oracle.

    Raises:
        InvalidInput: NaN/infinity, or values outside [pixel_min, pixel_max]; names `field`.
    """
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            index = int(np.flatnonzero(~finite.ravel())[0])
            raise InvalidInput(
                f"{field} contains NaN or infinity (first at flat element {index}); "
                "pixel values must be finite"
            )
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        pixel_min, pixel_max = spec.pixel_range
        if lo < pixel_min or hi > pixel_max:
            raise InvalidInput(
                f"{field} has values in [{lo:g}, {hi:g}], outside the model's pixel range "
                f"[{pixel_min:g}, {pixel_max:g}]"
            )
    return x.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=64)
def _uint8_in_range(pixel_min: float, pixel_max: float) -> bytes | None:
    """The byte values v with pixel_min <= v <= pixel_max; None when that is all 256."""
    allowed = bytes(v for v in range(256) if pixel_min <= v <= pixel_max)
    return None if len(allowed) == 256 else allowed


def check_image_shape(shape: tuple[int, ...], spec: InputSpec, field: str, batched: bool) -> None:
    """Require (N, C, H, W) when `batched`, else (C, H, W) or (H, W) for one channel.

    Raises:
        InvalidInput: names `field`, the shape received and the shape expected.
    """
    chw = spec.shape
    shape = tuple(shape)
    if batched:
        if len(shape) == 4 and shape[0] >= 1 and shape[1:] == chw:
            return
        c, h, w = chw
        expected = f"(N, {c}, {h}, {w}) with N >= 1"
    else:
        if shape == chw or (chw[0] == 1 and shape == chw[1:]):
            return
        c, h, w = chw
        expected = f"({c}, {h}, {w})" + (f" or ({h}, {w})" if c == 1 else "")
    raise InvalidInput(f"{field} has shape {shape}, the model expects {expected}")


def read_encoded(data: bytes, spec: InputSpec, max_side: int, field: str) -> Image.Image:
    """The header of one encoded image for a model of `spec`: size known, nothing decoded.

    Cheap whatever the image's size: the event loop reads headers, so that every limit is
    checked before any pixel is decoded (see `server.decoding`).

    Raises:
        InvalidInput: empty, not PNG/JPEG, a corrupt header, or a model that does not take 1
            or 3 channels; names `field`.
        LimitExceeded: a side is larger than `max_side` pixels.
    """
    if spec.channels not in core_images.IMAGE_MODES:
        raise InvalidInput(
            f"{field}: encoded images need a 1- or 3-channel model; this model has "
            f"{spec.channels} channels (send a raw tensor instead)"
        )
    try:
        return core_images.read_header(data, field, max_side)
    except core_images.ImageTooLargeError as exc:
        raise LimitExceeded(
            f"{field} is {exc.width}x{exc.height} pixels; each side must be <= "
            f"max_image_side={max_side} (CNN_MAX_IMAGE_SIDE)"
        ) from None
    except core_images.ImageDecodeError as exc:
        raise InvalidInput(str(exc)) from None


def check_decoded_pixels(pixels: int, images: int, max_decoded_pixels: int) -> None:
    """Refuse encoded images whose headers say they decode to too many pixels in all.

    Raises:
        LimitExceeded: `pixels` (of `images` images together) is over `max_decoded_pixels`;
            names the limit and its setting.
    """
    if pixels > max_decoded_pixels:
        raise LimitExceeded(
            f"the {images} encoded images decode to {pixels} pixels in all; "
            f"max_decoded_pixels is {max_decoded_pixels} (CNN_MAX_DECODED_PIXELS)"
        )


def decode_encoded(image: Image.Image, spec: InputSpec, field: str) -> np.ndarray:
    """Decode an image `read_encoded` returned into (C, H, W) float32 in the pixel range.

    `core.artifacts.image_input` does the work (the same function local predictions use): the
    image is converted to the model's channel count (L or RGB), brought to H x W by the
    model's resize mode and rescaled from 0..255 to the pixel range. The decoded
    full-size pixels are released before this returns.

    Raises:
        InvalidInput: corrupt or truncated pixel data; names `field`.
    """
    try:
        loaded = core_images.load_image(image, field)
        return image_input(loaded, spec, field)
    except core_images.ImageDecodeError as exc:
        raise InvalidInput(str(exc)) from None
    finally:
        image.close()


def decode_image(data: bytes, spec: InputSpec, max_side: int, field: str) -> np.ndarray:
    """Decode PNG/JPEG bytes into (C, H, W) float32 in the model's pixel range, at once
    (`read_encoded` then `decode_encoded`).

    Raises:
        InvalidInput: empty, not PNG/JPEG, undecodable, or a model that does not take 1 or 3
            channels; names `field`.
        LimitExceeded: a side is larger than `max_side` pixels (checked before decoding).
    """
    return decode_encoded(read_encoded(data, spec, max_side, field), spec, field)
