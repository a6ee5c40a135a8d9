"""The learning curve: loss and accuracy (R² for a regression) per epoch, train and validation.

Drawn with matplotlib (Agg, no pyplot), imported when a curve is drawn. The array pictures
(colour maps, grids, PNG) are in :mod:`core.pictures`; the labelled pictures of `cnn inspect`
in :mod:`core.inspection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ShapeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The learning curve's size in pixels: (9.6 in x 3.8 in) at DPI.
CURVE_INCHES = (9.6, 3.8)
DPI = 100


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
