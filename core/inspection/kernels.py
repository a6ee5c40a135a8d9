"""A conv layer's kernels: one tile per (filter, input channel) on one diverging scale.

Weights (F, C, KH, KW) are drawn as one mosaic, filters down (``f0``, ``f1``... on the y axis),
input channels across (``c0``, ``c1``... on the x axis), with the colour map ``RdBu_r`` on
``-m..m``, ``m = max |w|`` over the whole layer: zero is white, so weights that went to zero
are visible, and tiles of one layer compare with each other. A layer with more filters or
channels than the limits shows the first ones and says so in the title.

A first layer on RGB images is also drawn as colour images, one per filter: each channel
``0.5 + w / (2m)`` with the same ``m``, so a zero weight is mid-grey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.errors import ShapeError
from core.inspection.canvas import GRID_COLUMNS, new_figure
from core.pictures import grid_shape, mosaic, symmetric_limit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Most filters (rows) and input channels (columns) one kernel figure shows.
MAX_FILTERS = 32
MAX_CHANNELS = 16
#: Inches per kernel tile in the mosaic.
TILE_IN = 0.45
CMAP = "RdBu_r"


def _check(weight: np.ndarray) -> None:
    if weight.ndim != 4:
        raise ShapeError(f"kernel weights must be (F, C, KH, KW), got shape {weight.shape}")


def _shown(total: int, limit: int, what: str) -> str:
    return f"{total} {what}" if total <= limit else f"first {limit} of {total} {what}"


def kernels_figure(weight: np.ndarray, title: str) -> Figure:
    """Weights (F, C, KH, KW) -> figure: rows are filters ``f<i>``, columns input channels
    ``c<j>``, one shared ``RdBu_r`` scale ``-m..m`` with a colour bar labelled ``weight``.

    Raises:
        ShapeError: weights that are not 4-D.
    """
    _check(weight)
    f_all, c_all, kh, kw = weight.shape
    f, c = min(f_all, MAX_FILTERS), min(c_all, MAX_CHANNELS)
    limit = symmetric_limit(weight)
    tiles = np.asarray(weight[:f, :c], np.float64).reshape(f * c, kh, kw)
    image = mosaic(tiles, columns=c)
    side = TILE_IN / max(kh, kw)  # inches per kernel pixel
    fig = new_figure(image.shape[1] * side + 2.2, image.shape[0] * side + 1.4)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps[CMAP].with_extremes(bad="0.75")  # grey gaps: zero weights are white
    shown = ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks([j * (kw + 1) + (kw - 1) / 2 for j in range(c)], [f"c{j}" for j in range(c)])
    ax.set_yticks([i * (kh + 1) + (kh - 1) / 2 for i in range(f)], [f"f{i}" for i in range(f)])
    ax.tick_params(length=0, labelsize=8, labeltop=c > 1, labelbottom=True)
    ax.set_xlabel("input channel")
    ax.set_ylabel("filter")
    ax.set_title(
        f"{title}: kernels {kh}×{kw}, {_shown(f_all, MAX_FILTERS, 'filters')} × "
        f"{_shown(c_all, MAX_CHANNELS, 'channels')}; shared scale ±{limit:.3g}",
        fontsize=10,
        wrap=True,
    )
    fig.colorbar(shown, ax=ax, shrink=0.8, label="weight")
    return fig


def rgb_kernels_figure(weight: np.ndarray, title: str) -> Figure:
    """Weights (F, 3, KH, KW) of a layer on RGB images -> one colour tile per filter, labelled
    ``f<i>``; mid-grey is zero, on the layer's shared scale.

    Raises:
        ShapeError: weights that are not (F, 3, KH, KW).
    """
    _check(weight)
    if weight.shape[1] != 3:
        raise ShapeError(f"colour kernels need 3 input channels, got shape {weight.shape}")
    f_all, _, kh, kw = weight.shape
    f = min(f_all, MAX_FILTERS * 2)
    limit = symmetric_limit(weight)
    rgb = np.clip(0.5 + weight[:f].transpose(0, 2, 3, 1) / (2 * limit), 0.0, 1.0)
    rows, columns = grid_shape(f, GRID_COLUMNS)
    fig = new_figure(columns * 0.9 + 0.4, rows * 1.0 + 0.8)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < f:
            ax.imshow(rgb[i], interpolation="nearest")
            ax.set_title(f"f{i}", fontsize=8)
    fig.suptitle(
        f"{title}: RGB kernels {kh}×{kw} as colour images "
        f"({_shown(f_all, MAX_FILTERS * 2, 'filters')}; "
        f"grey = 0, scale ±{limit:.3g})",
        fontsize=10,
    )
    return fig
