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

from core.pictures import diverging_rgb, enlarge, enlargement, mosaic, symmetric_limit, unit_range

#: Side a kernel is enlarged to, at least (a 5x5 kernel is drawn 25x25 px, a 3x3 one 27x27 px).
KERNEL_PX = 24
#: Filters (rows) and input channels (columns) shown at most: a 256x256 layer would be an
#: image of 65536 kernels nobody can read.
MAX_FILTERS = 32
MAX_CHANNELS = 32
#: Grey of the separating lines (one pixel, also around the grid).
GAP_GREY = 128


def _grid(tiles: np.ndarray, columns: int) -> np.ndarray:
    """(N, h, w, 3) uint8 tiles -> (R*(h+1)+1, columns*(w+1)+1, 3), grey lines between."""
    return mosaic(tiles, columns, gap=1, fill=GAP_GREY, margin=1)


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
    rows, columns, kh, kw = shown.shape
    # NaN weights show white, and do not decide the scale
    colours = diverging_rgb(np.nan_to_num(shown), symmetric_limit(shown))
    tiles = enlarge(colours, enlargement(kh, kw, KERNEL_PX))
    return _grid(tiles.reshape(rows * columns, *tiles.shape[2:]), columns)


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
    filters, _, kh, kw = shown.shape
    pixels = np.rint(unit_range(shown) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)
    return _grid(enlarge(pixels, enlargement(kh, kw, KERNEL_PX)), filters)
