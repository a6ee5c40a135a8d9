"""Explain's PNGs: a saliency heat map and a grid of feature maps (made with `core.pictures`).

The layouts (scales, columns, gaps, colour maps) are part of the API: `classifier.proto`
documents them so callers can find a tile or a pixel in a picture.
"""

from __future__ import annotations

import numpy as np

from core.pictures import Picture, enlarge, enlargement, grid_shape, mosaic, sequential_rgb, to_png

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


def scale_for(height: int, width: int, min_side: int) -> int:
    """Enlargement so the longer side reaches `min_side`: max(1, ceil(min_side / max(H, W))),
    at most MAX_SCALE."""
    return enlargement(height, width, min_side, MAX_SCALE)


def grid_columns(channels: int) -> int:
    """Tiles per row of a feature map grid: ceil(sqrt(C))."""
    return grid_shape(channels)[1]


def saliency_png(saliency: np.ndarray, scale: int) -> Picture:
    """(H, W) saliency >= 0 -> heat map PNG (W * scale, H * scale), 0 .. max."""
    top = float(saliency.max()) if saliency.size else 0.0
    return to_png(enlarge(sequential_rgb(saliency, 0.0, top, SALIENCY_COLOURS), scale))


def maps_png(maps: np.ndarray, scale: int, columns: int) -> Picture:
    """(C, H', W') maps -> one PNG grid: C tiles in channel order, `columns` per row, each
    (H' * scale, W' * scale), GAP pixels apart; one colour scale (min .. max) for all tiles."""
    coloured = sequential_rgb(maps, float(maps.min()), float(maps.max()), MAPS_COLOURS)
    return to_png(mosaic(enlarge(coloured, scale), columns, gap=GAP, fill=GAP_RGB))
