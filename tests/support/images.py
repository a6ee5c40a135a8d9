"""Encoded images for tests: pixels in, PNG/JPEG bytes out (Pillow)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_image(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """(H, W) grey or (H, W, 3) RGB uint8 pixels as `fmt` ("PNG" or "JPEG") bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()
