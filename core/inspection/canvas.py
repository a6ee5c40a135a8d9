"""Figures on an Agg canvas, their PNG bytes and texts, and images ready to show.

The arrays behind the pictures (limits, mosaics, grids) come from :mod:`core.pictures`.

``new_figure`` gives a ``Figure`` of a fixed size in inches at :data:`DPI`, so the PNG is
exactly ``inches * DPI`` pixels (no tight bounding box: tests and the page rely on the size).
``figure_texts`` lists every string a figure draws (titles, tick labels, axis labels, legend
and free texts): tests check labels with it instead of reading pixels.
"""

from __future__ import annotations

import io
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
#: Most tiles per row of a figure's grid (`core.pictures.grid_shape`).
GRID_COLUMNS = 8


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
