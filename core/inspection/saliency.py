"""The saliency map of one class over the image it was computed for.

Two panels: the model input with the map laid over it (``inferno``, transparency rising with
saliency, so salient pixels glow and the rest of the image stays visible), and the map alone
with a colour bar (|d logit / d input|, max over channels: :func:`core.explain.saliency`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.errors import ShapeError
from core.inspection.canvas import new_figure, show_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CMAP = "inferno"
PANEL_IN = 3.2


def saliency_figure(image: np.ndarray, saliency: np.ndarray, title: str) -> Figure:
    """``image`` ((H, W) grey or (H, W, 3) in 0..1) and its saliency map (H, W) -> figure
    with the overlay (panel "image + saliency") and the map (panel "saliency").

    Raises:
        ShapeError: the map's size differs from the image's.
    """
    if saliency.shape != image.shape[:2]:
        raise ShapeError(f"saliency map {saliency.shape} differs from the image {image.shape[:2]}")
    top = float(saliency.max()) if saliency.size and float(saliency.max()) > 0 else 1.0
    fig = new_figure(2 * PANEL_IN + 1.0, PANEL_IN * image.shape[0] / image.shape[1] + 0.9)
    overlay, alone = fig.subplots(1, 2)
    show_image(overlay, image)
    alpha = np.clip(saliency / top, 0.0, 1.0) * 0.8
    overlay.imshow(saliency, cmap=CMAP, vmin=0.0, vmax=top, alpha=alpha, interpolation="nearest")
    overlay.set_title("image + saliency", fontsize=9)
    shown = alone.imshow(saliency, cmap=CMAP, vmin=0.0, vmax=top, interpolation="nearest")
    alone.set_xticks([])
    alone.set_yticks([])
    alone.set_title("saliency", fontsize=9)
    fig.colorbar(shown, ax=alone, shrink=0.8, label="|∂ logit / ∂ input|")
    fig.suptitle(title, fontsize=10)
    return fig
