"""Conv kernels as pictures for TensorBoard: one grid per layer, a diverging colour map.

A conv weight (F, C/groups, KH, KW) becomes one RGB image: filter f in row f, input channel c in
column c, each KH x KW kernel enlarged by an integer factor (nearest neighbour: a pixel is a
weight) and separated by a 1-px grey line. Colours are blue (negative) - white (zero) - red
(positive) on ONE scale per layer, ``max |w|`` over the kernels shown, so weights that went to
zero show as white and filters can be compared. A first layer on RGB input is also shown as one
colour picture per filter (its three input-channel kernels as R, G and B).
"""

from __future__ import annotations

import numpy as np

#: Side a kernel is enlarged to, at least (a 5x5 kernel is drawn 25x25 px, a 3x3 one 27x27 px).
KERNEL_PX = 24
#: Filters (rows) and input channels (columns) shown at most: a 256x256 layer would be an
#: image of 65536 kernels nobody can read.
MAX_FILTERS = 32
MAX_CHANNELS = 32
#: Grey of the separating lines.
GAP_GREY = 128


def diverging_rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """Map values to colours: ``-scale`` blue (0, 0, 255), 0 white, ``+scale`` red (255, 0, 0).

    Args:
        values: any shape (...).
        scale: the magnitude drawn at full colour (> 0; values beyond it are clipped).

    Returns:
        (..., 3) uint8.
    """
    t = np.clip(np.asarray(values, dtype=np.float64) / scale, -1.0, 1.0) if scale > 0 else None
    if t is None:
        t = np.zeros(np.shape(values))
    pos, neg = np.clip(t, 0.0, 1.0), np.clip(-t, 0.0, 1.0)
    rgb = np.stack([1.0 - neg, 1.0 - pos - neg, 1.0 - pos], axis=-1)
    return np.rint(rgb * 255.0).astype(np.uint8)


def _zoom(kh: int, kw: int) -> int:
    return max(1, -(-KERNEL_PX // max(kh, kw)))


def _tile(tiles: np.ndarray) -> np.ndarray:
    """(R, C, h, w, 3) uint8 tiles -> one (R*(h+1)+1, C*(w+1)+1, 3) image with grey lines."""
    rows, cols, h, w, _ = tiles.shape
    out = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), GAP_GREY, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = 1 + r * (h + 1), 1 + c * (w + 1)
            out[top : top + h, left : left + w] = tiles[r, c]
    return out


def kernel_grid(weight: np.ndarray) -> np.ndarray:
    """Every kernel of a conv layer (up to `MAX_FILTERS` x `MAX_CHANNELS`), one shared scale.

    Args:
        weight: (F, C, KH, KW).

    Returns:
        (R*(KH*z+1)+1, Cs*(KW*z+1)+1, 3) uint8 with R = min(F, MAX_FILTERS), Cs = min(C,
        MAX_CHANNELS) and z the zoom that makes a kernel at least `KERNEL_PX` px.
    """
    if weight.ndim != 4:
        raise ValueError(f"conv weight must be (F, C, KH, KW), got shape {weight.shape}")
    shown = np.asarray(weight[:MAX_FILTERS, :MAX_CHANNELS], dtype=np.float64)
    finite = shown[np.isfinite(shown)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    _, _, kh, kw = shown.shape
    z = _zoom(kh, kw)
    big = np.repeat(np.repeat(np.nan_to_num(shown), z, axis=2), z, axis=3)
    return _tile(diverging_rgb(big, scale))


def rgb_filters(weight: np.ndarray) -> np.ndarray:
    """The filters of a layer on 3-channel input as colour pictures, in one row (up to
    `MAX_FILTERS`): the weights min-max scaled to 0..255 over the layer, so the colour a filter
    responds to most shows as its brightest.

    Args:
        weight: (F, 3, KH, KW).

    Returns:
        (KH*z+2, R*(KW*z+1)+1, 3) uint8 with R = min(F, MAX_FILTERS).
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(
            f"need a conv weight on 3 input channels (F, 3, KH, KW), got {weight.shape}"
        )
    shown = np.nan_to_num(np.asarray(weight[:MAX_FILTERS], dtype=np.float64))
    low, high = float(shown.min()), float(shown.max())
    unit = (shown - low) / (high - low) if high > low else np.full_like(shown, 0.5)
    _, _, kh, kw = shown.shape
    z = _zoom(kh, kw)
    pixels = np.rint(unit * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)  # (F, KH, KW, 3)
    pixels = np.repeat(np.repeat(pixels, z, axis=1), z, axis=2)
    return _tile(pixels[np.newaxis])
