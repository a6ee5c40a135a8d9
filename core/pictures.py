"""Arrays as pictures: colour maps, limits, grids of tiles, nearest-neighbour enlargement, PNG.

The building blocks every picture of the project is made of; the layouts (which colours, how
big, what gap) belong to the callers, which document them: Explain's PNGs
(`server.explain_pictures`, laid out in `classifier.proto`), TensorBoard's kernel grids
(`worker.kernel_images`) and the labelled figures of `cnn inspect` (`core.inspection`).

- colour: :func:`sequential_rgb` (a matplotlib colour map from ``lo`` to ``hi``) and
  :func:`diverging_rgb` (blue - white - red, centred on zero, on ``-limit .. limit``), with
  :func:`symmetric_limit` for that limit and :func:`unit_range` for a min-max stretch;
- layout: :func:`grid_shape` (a near-square grid), :func:`mosaic` (tiles in rows with gaps),
  :func:`enlargement` and :func:`enlarge` (nearest neighbour: a pixel stays a square);
- :func:`to_png`: (H, W) grey or (H, W, 3) RGB uint8 -> PNG bytes and size.

matplotlib (colour maps only, no figures) and Pillow are imported on first use, so importing
this module costs only NumPy.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np

from core.errors import ShapeError

# --- colour ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def colour_lut(name: str) -> np.ndarray:
    """(256, 3) uint8: matplotlib's colour map ``name`` sampled at 256 even steps."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def sequential_rgb(values: np.ndarray, lo: float, hi: float, colour_map: str) -> np.ndarray:
    """(...) values -> (..., 3) uint8 colours of ``colour_map``: ``lo`` the first of its 256
    colours, ``hi`` the last, linear between (``round((v - lo) * 255 / (hi - lo))``, clipped);
    with ``hi <= lo`` (a constant array) all the first colour."""
    span = hi - lo
    if not span > 0:
        index = np.zeros(np.shape(values), np.intp)
    else:
        scaled = (np.asarray(values, np.float64) - lo) * (255.0 / span)
        index = np.clip(np.rint(scaled), 0, 255).astype(np.intp)
    return colour_lut(colour_map)[index]


def diverging_rgb(values: np.ndarray, limit: float) -> np.ndarray:
    """(...) values -> (..., 3) uint8: ``-limit`` blue (0, 0, 255), 0 white, ``+limit`` red
    (255, 0, 0), linear between and clipped beyond; with ``limit <= 0`` all white.

    ``t = clip(v / limit, -1, 1)``: RGB = 255 * (1 - max(-t, 0), 1 - |t|, 1 - max(t, 0)).
    """
    t = np.zeros(np.shape(values))
    if limit > 0:
        t = np.clip(np.asarray(values, dtype=np.float64) / limit, -1.0, 1.0)
    pos, neg = np.clip(t, 0.0, 1.0), np.clip(-t, 0.0, 1.0)
    rgb = np.stack([1.0 - neg, 1.0 - pos - neg, 1.0 - pos], axis=-1)
    return np.rint(rgb * 255.0).astype(np.uint8)


def symmetric_limit(values: np.ndarray) -> float:
    """The largest finite ``|value|``, for a diverging scale ``-m .. m`` centred on zero; 1.0
    when there is none above zero (all zero, empty, or nothing finite)."""
    magnitudes = np.abs(np.asarray(values, np.float64))
    finite = magnitudes[np.isfinite(magnitudes)]
    m = float(finite.max()) if finite.size else 0.0
    return m if m > 0 else 1.0


def unit_range(values: np.ndarray) -> np.ndarray:
    """Values stretched to 0..1 over their own min..max (float64); a constant array -> 0.5."""
    a = np.asarray(values, np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        return np.full_like(a, 0.5)
    return (a - lo) / (hi - lo)


# --- layout ------------------------------------------------------------------------------------


def grid_shape(count: int, max_columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a near-square grid of ``count`` tiles: columns = ceil(sqrt(count)),
    at most ``max_columns``; rows = ceil(count / columns)."""
    columns = max(1, math.ceil(math.sqrt(count)))
    if max_columns is not None:
        columns = max(1, min(max_columns, columns))
    return math.ceil(count / columns), columns


def mosaic(
    tiles: np.ndarray,
    columns: int,
    gap: int = 1,
    fill: float | tuple[int, ...] = math.nan,
    margin: int = 0,
) -> np.ndarray:
    """Tiles (N, h, w) or (N, h, w, 3) -> one image of the tiles' dtype, tile ``i`` in row
    ``i // columns``, column ``i % columns``; ``gap`` pixels between tiles and ``margin``
    around them, both ``fill`` (as are the unused places of the last row; NaN shows as a
    matplotlib colour map's "bad" colour).

    Size: (2 * margin + R * (h + gap) - gap, 2 * margin + columns * (w + gap) - gap),
    R = ceil(N / columns).

    Raises:
        ShapeError: tiles that are not 3-D or 4-D, none at all, or ``columns < 1``.
    """
    if tiles.ndim not in (3, 4) or tiles.shape[0] == 0 or columns < 1:
        raise ShapeError(
            f"mosaic needs tiles (N >= 1, h, w[, 3]) and columns >= 1, got {tiles.shape} "
            f"and {columns} columns"
        )
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / columns)
    height = 2 * margin + rows * (h + gap) - gap
    width = 2 * margin + columns * (w + gap) - gap
    out = np.empty((height, width, *tiles.shape[3:]), tiles.dtype)
    out[...] = fill
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = margin + r * (h + gap), margin + c * (w + gap)
        out[top : top + h, left : left + w] = tiles[i]
    return out


def enlargement(height: int, width: int, min_side: int, max_scale: int | None = None) -> int:
    """The integer scale that brings the longer side to at least ``min_side`` pixels:
    max(1, ceil(min_side / max(H, W))), at most ``max_scale``."""
    scale = math.ceil(min_side / max(height, width, 1))
    if max_scale is not None:
        scale = min(max_scale, scale)
    return max(1, scale)


def enlarge(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Colour images (..., H, W, 3) -> (..., H * scale, W * scale, 3), nearest neighbour: each
    pixel becomes a ``scale`` x ``scale`` square."""
    return np.repeat(np.repeat(pixels, scale, axis=-3), scale, axis=-2)


# --- PNG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """One PNG file's bytes and its size in pixels."""

    data: bytes
    width: int
    height: int


def to_png(pixels: np.ndarray, compress_level: int | None = None) -> Picture:
    """(H, W) grey or (H, W, 3) RGB uint8 -> PNG (Pillow). ``compress_level`` 0..9 (zlib; 1 is
    fastest), Pillow's default (6) when None.

    Raises:
        ShapeError: any other shape or dtype.
    """
    from PIL import Image

    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise ShapeError(f"a PNG needs (H, W[, 3]) uint8, got {pixels.shape} {pixels.dtype}")
    options = {} if compress_level is None else {"compress_level": compress_level}
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", **options)
    return Picture(buffer.getvalue(), int(pixels.shape[1]), int(pixels.shape[0]))
