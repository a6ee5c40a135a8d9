"""PNG pictures of Explain's tensors: a saliency heat map and a grid of feature maps.

The layouts (scales, columns, gaps, colour maps) are part of the API: `classifier.proto`
documents them so callers can find a tile or a pixel in a picture. matplotlib supplies the
colour maps only (no figures): it is imported on the first picture, not with the server.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np

#: Saliency heat map: each input pixel becomes a square of this many pixels per side, so that
#: the longer side is at least SALIENCY_MIN_SIDE pixels (8x8 digits: 16 -> 128 x 128).
SALIENCY_MIN_SIDE = 128
#: Feature map tiles: enlarged so that a tile's longer side is at least TILE_MIN_SIDE pixels.
TILE_MIN_SIDE = 32
#: No picture enlarges a pixel more than this (large inputs are shown 1:1).
MAX_SCALE = 16
#: Pixels between two tiles of a grid, and their colour (dark grey).
GAP = 2
GAP_RGB = (64, 64, 64)
SALIENCY_COLOURS = "inferno"
MAPS_COLOURS = "viridis"


@dataclass(frozen=True)
class Picture:
    """One PNG file's bytes and its size in pixels."""

    data: bytes
    width: int
    height: int


def scale_for(height: int, width: int, min_side: int) -> int:
    """Enlargement so the longer side reaches `min_side`: max(1, ceil(min_side / max(H, W))),
    at most MAX_SCALE."""
    return max(1, min(MAX_SCALE, math.ceil(min_side / max(height, width, 1))))


def grid_columns(channels: int) -> int:
    """Tiles per row of a feature map grid: ceil(sqrt(C))."""
    return max(1, math.ceil(math.sqrt(channels)))


@functools.lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colours of matplotlib's colour map `name`."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def _colour(values: np.ndarray, lo: float, hi: float, name: str) -> np.ndarray:
    """(..., H, W) values -> (..., H, W, 3) uint8: lo maps to the first colour, hi to the last
    (a constant array: all the first colour)."""
    span = hi - lo
    if not span > 0:
        index = np.zeros(values.shape, np.intp)
    else:
        scaled = (values.astype(np.float64) - lo) * (255.0 / span)
        index = np.clip(np.rint(scaled), 0, 255).astype(np.intp)
    return _lut(name)[index]


def _png(rgb: np.ndarray) -> Picture:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, format="PNG")
    return Picture(buffer.getvalue(), int(rgb.shape[1]), int(rgb.shape[0]))


def _enlarge(rgb: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) -> (H * scale, W * scale, 3), nearest neighbour."""
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def saliency_png(saliency: np.ndarray, scale: int) -> Picture:
    """(H, W) saliency >= 0 -> heat map PNG (W * scale, H * scale), 0 .. max."""
    top = float(saliency.max()) if saliency.size else 0.0
    return _png(_enlarge(_colour(saliency, 0.0, top, SALIENCY_COLOURS), scale))


def maps_png(maps: np.ndarray, scale: int, columns: int) -> Picture:
    """(C, H', W') maps -> one PNG grid: C tiles in channel order, `columns` per row, each
    (H' * scale, W' * scale), GAP pixels apart; one colour scale (min .. max) for all tiles."""
    channels, height, width = maps.shape
    rows = math.ceil(channels / columns)
    tile_h, tile_w = height * scale, width * scale
    out = np.empty(
        (rows * tile_h + GAP * (rows - 1), columns * tile_w + GAP * (columns - 1), 3), np.uint8
    )
    out[...] = GAP_RGB
    coloured = _colour(maps, float(maps.min()), float(maps.max()), MAPS_COLOURS)
    for c in range(channels):
        r, k = divmod(c, columns)
        top, left = r * (tile_h + GAP), k * (tile_w + GAP)
        out[top : top + tile_h, left : left + tile_w] = _enlarge(coloured[c], scale)
    return _png(out)
