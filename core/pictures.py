"""Small pictures: unlabelled Pillow grids of kernels and feature maps, and the learning curve.

- :func:`kernel_grid`: conv kernels (F, C, KH, KW) as tiles, RGB when C == 3, else one
  grayscale tile per (filter, channel); each tile scaled to its own min..max.
- :func:`feature_map_grid`: one image's maps (C, H, W) of a layer, one tile per channel.
- :func:`learning_curve_png`: loss and accuracy (R² for a regression) per epoch, train and
  validation, drawn with matplotlib (Agg, no pyplot; imported when a curve is drawn, so that
  importing this module for the grids costs nothing extra). The labelled, colour-mapped
  pictures of `cnn inspect` are in :mod:`core.inspection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.errors import ShapeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_TILE = 48  # tiles are enlarged (nearest neighbour) to at least this many pixels
GAP = 2
#: The learning curve's size in pixels: (9.6 in x 3.8 in) at DPI.
CURVE_INCHES = (9.6, 3.8)
DPI = 100


def _scale01(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-12:
        return np.full_like(a, 0.5)
    return (a - lo) / (hi - lo)


def _tile(a: np.ndarray) -> Image.Image:
    """(H, W) or (H, W, 3) in 0..1 -> enlarged Pillow image."""
    pixels = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L").convert("RGB")
    h, w = pixels.shape[:2]
    factor = max(1, math.ceil(MIN_TILE / max(h, w)))
    return img.resize((w * factor, h * factor), Image.Resampling.NEAREST)


def _grid(tiles: Sequence[Image.Image], columns: int | None = None) -> Image.Image:
    if not tiles:
        raise ShapeError("nothing to draw: no tiles")
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    tw, th = tiles[0].size
    grid = Image.new("RGB", (columns * (tw + GAP) + GAP, rows * (th + GAP) + GAP), (128, 128, 128))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid.paste(tile, (GAP + c * (tw + GAP), GAP + r * (th + GAP)))
    return grid


def kernel_grid(weight: np.ndarray) -> Image.Image:
    """Conv weights (F, C, KH, KW) -> grid image; RGB tiles when C == 3."""
    if weight.ndim != 4:
        raise ShapeError(f"kernel weights must be (F, C, KH, KW), got {weight.shape}")
    f, c = weight.shape[:2]
    if c == 3:
        tiles = [_tile(_scale01(weight[i].transpose(1, 2, 0))) for i in range(f)]
        return _grid(tiles)
    tiles = [_tile(_scale01(weight[i, j])) for i in range(f) for j in range(c)]
    return _grid(tiles, columns=c if c > 1 else None)


def feature_map_grid(maps: np.ndarray) -> Image.Image:
    """One sample's maps (C, H, W) -> grid image, each map scaled to its own range."""
    if maps.ndim != 3:
        raise ShapeError(f"feature maps must be (C, H, W), got {maps.shape}")
    return _grid([_tile(_scale01(m)) for m in maps])


# --- learning curve ----------------------------------------------------------------------------


def _finite(values: Sequence[Any]) -> list[float]:
    """Epoch values as floats, NaN where missing (matplotlib leaves a gap there)."""
    out = []
    for v in values:
        f = float(v) if v is not None else math.nan
        out.append(f if math.isfinite(f) else math.nan)
    return out


def learning_curve_figure(history: Sequence[dict[str, Any]]) -> Figure:
    """Two panels, loss and accuracy (R² for a regression history), of the train and validation
    values per epoch; 960 x 380 pixels.

    ``history`` is ``TrainResult.history``: one dict per epoch with ``epoch``, ``loss``,
    ``accuracy`` (or ``r2``) and their ``val_`` twins (None without a validation split).

    Raises:
        ShapeError: an empty history.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ShapeError("learning curve needs at least one epoch of history")
    epochs = [int(h["epoch"]) for h in history]
    # a regression history has R² (unitless, <= 1) where a classifier's has accuracy
    second = "r2" if history[-1].get("r2") is not None else "accuracy"
    fig = Figure(figsize=CURVE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    panels = (("loss", "loss"), (second, "R²" if second == "r2" else "accuracy"))
    for ax, (key, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for split, prefix, colour in (("train", "", "C0"), ("validation", "val_", "C1")):
            values = _finite([h.get(prefix + key) for h in history])
            if all(math.isnan(v) for v in values):
                continue
            ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=split)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize="small")
    return fig


def learning_curve_png_bytes(history: Sequence[dict[str, Any]]) -> bytes:
    """:func:`learning_curve_figure` as PNG bytes."""
    import io

    buf = io.BytesIO()
    learning_curve_figure(history).savefig(buf, format="png")
    return buf.getvalue()


def learning_curve_png(history: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Write :func:`learning_curve_figure` as PNG (atomically) and return the path."""
    from core.durable import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, learning_curve_png_bytes(history))
    return path
