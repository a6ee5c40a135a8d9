"""Figures on an Agg canvas, their PNG bytes and texts, and images ready to show.

``new_figure`` gives a ``Figure`` of a fixed size in inches at :data:`DPI`, so the PNG is
exactly ``inches * DPI`` pixels (no tight bounding box: tests and the page rely on the size).
``figure_texts`` lists every string a figure draws (titles, tick labels, axis labels, legend
and free texts): tests check labels with it instead of reading pixels.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
#: Size limits of one figure, inches: a layer with many channels gets small tiles, not a
#: picture no browser shows whole.
MAX_WIDTH_IN = 16.0
MAX_HEIGHT_IN = 40.0


def new_figure(width_in: float, height_in: float) -> Figure:
    """A ``Figure`` of (width, height) inches, clipped to the limits, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = (min(max(width_in, 3.0), MAX_WIDTH_IN), min(max(height_in, 2.0), MAX_HEIGHT_IN))
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def pixel_size(fig: Figure) -> tuple[int, int]:
    """(width, height) in pixels of the PNG ``png_bytes(fig)`` writes."""
    # the Agg canvas's own figure (whole pixels, as it renders; not a rounding of inches x dpi)
    w, h = fig.canvas.get_width_height()
    return int(w), int(h)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (:func:`pixel_size` pixels)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def figure_texts(fig: Figure, draw: bool = True) -> list[str]:
    """Every non-empty string the figure shows, in drawing-tree order (tick labels included).

    Tick labels exist once the figure has been drawn: ``draw=False`` after :func:`png_bytes`
    saves drawing it twice.
    """
    from matplotlib.text import Text

    if draw:
        fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def grid_shape(count: int, max_columns: int = 8) -> tuple[int, int]:
    """(rows, columns) of a near-square grid for ``count`` tiles, at most ``max_columns`` wide."""
    columns = max(1, min(max_columns, math.ceil(math.sqrt(count))))
    return math.ceil(count / columns), columns


def showable(pixels: np.ndarray, pixel_range: tuple[float, float]) -> np.ndarray:
    """Raw model input (C, H, W) in ``pixel_range`` -> (H, W) grey or (H, W, 3) colour in 0..1.

    Two-channel or four-channel inputs show their first channel.
    """
    lo, hi = pixel_range
    scaled = np.clip((np.asarray(pixels, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    if scaled.shape[0] == 3:
        return scaled.transpose(1, 2, 0)
    return scaled[0]


def show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw :func:`showable` output on ``ax`` (grey colour map for one channel), no ticks."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def symmetric_limit(values: np.ndarray) -> float:
    """max |value| (1.0 for an all-zero array): a diverging scale -v..v centred on zero."""
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return m if m > 0 and math.isfinite(m) else 1.0


def mosaic(tiles: np.ndarray, columns: int, gap: int = 1, fill: float = math.nan) -> np.ndarray:
    """Tiles (N, h, w) or (N, h, w, 3) -> one array with ``columns`` tiles per row, ``gap``
    pixels of ``fill`` between them (NaN shows as the colour map's "bad" colour)."""
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / columns)
    shape = (rows * (h + gap) - gap, columns * (w + gap) - gap, *tiles.shape[3:])
    out = np.full(shape, fill, np.float64)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tiles[i]
    return out
