"""One image's feature maps of a layer: a tile per channel on one colour scale per layer.

Maps (C, H, W) are a conv layer's output (before its activation). Signed maps use ``RdBu_r`` on
``-m..m`` (zero white), maps that are never negative ``viridis`` on ``0..max``; either way one
scale for the whole layer, shown by one colour bar, so a channel that barely responds looks
faint instead of being stretched to full contrast. Each tile is titled ``ch <c>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.errors import ShapeError
from core.inspection.canvas import GRID_COLUMNS, new_figure
from core.pictures import grid_shape, symmetric_limit

if TYPE_CHECKING:
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

#: Most channels one figure shows (the first ones; the title says how many there are).
MAX_MAPS = 64
TILE_IN = 1.1


def layer_scale(maps: np.ndarray) -> tuple[str, Normalize]:
    """(colour map name, norm) shared by every map of a layer (see the module docstring)."""
    from matplotlib.colors import Normalize

    if float(maps.min(initial=0.0)) < 0.0:
        limit = symmetric_limit(maps)
        return "RdBu_r", Normalize(-limit, limit)
    top = float(maps.max(initial=0.0))
    return "viridis", Normalize(0.0, top if top > 0 else 1.0)


def feature_maps_figure(maps: np.ndarray, title: str) -> Figure:
    """One sample's maps (C, H, W) -> a grid of tiles ``ch <c>`` with one colour bar.

    Raises:
        ShapeError: maps that are not 3-D.
    """
    if maps.ndim != 3:
        raise ShapeError(f"feature maps must be (C, H, W), got shape {maps.shape}")
    c_all, h, w = maps.shape
    c = min(c_all, MAX_MAPS)
    cmap, norm = layer_scale(maps)
    rows, columns = grid_shape(c, GRID_COLUMNS)
    aspect = h / w
    fig = new_figure(columns * TILE_IN + 1.4, rows * TILE_IN * aspect + rows * 0.25 + 0.8)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= c:
            ax.set_axis_off()
            continue
        ax.imshow(maps[i], cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(f"ch {i}", fontsize=8, pad=2)
    count = f"{c_all} channels" if c_all <= MAX_MAPS else f"first {MAX_MAPS} of {c_all} channels"
    fig.suptitle(f"{title}: feature maps {h}×{w}, {count}", fontsize=10)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(
        ScalarMappable(norm, cmap),
        ax=axes,
        shrink=0.8,
        label="activation (before the activation function)",
    )
    return fig
