"""Receptive fields made visible: the input box the most active unit of each channel sees.

For channel c of a layer's maps (C, H', W'), the most active unit is ``argmax`` over positions
(the first in row-major order on a tie); the box is :func:`core.explain.unit_box` of that unit
with the layer's receptive field from :mod:`core.summary` (size, jump, start), clipped to the
input. Each tile shows the model input (resized, as the model sees it) with the box as a
rectangle; the title says the field's size, jump and start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ShapeError
from core.explain import Box, unit_box
from core.inspection.canvas import GRID_COLUMNS, new_figure, show_image
from core.inspection.maps import MAX_MAPS
from core.pictures import grid_shape

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from core.summary import ReceptiveField

TILE_IN = 1.3
BOX_COLOUR = "#e41a1c"


@dataclass(frozen=True)
class StrongestUnit:
    """Channel ``channel``'s most active unit (y, x), its activation and its input box."""

    channel: int
    y: int
    x: int
    value: float
    box: Box


def strongest_units(
    maps: np.ndarray, field: ReceptiveField, height: int, width: int
) -> list[StrongestUnit]:
    """Maps (C, H', W') of a layer with receptive field ``field`` on an input of ``height`` x
    ``width`` -> per channel the most active unit and the input box it sees.

    Raises:
        ShapeError: maps that are not 3-D.
        ValueError: a global field (no box to draw).
    """
    if maps.ndim != 3:
        raise ShapeError(f"feature maps must be (C, H, W), got shape {maps.shape}")
    units = []
    for c in range(maps.shape[0]):
        y, x = np.unravel_index(int(np.argmax(maps[c])), maps.shape[1:])
        box = unit_box(field, int(y), int(x), height, width)
        units.append(StrongestUnit(c, int(y), int(x), float(maps[c, y, x]), box))
    return units


def pair_text(values: tuple[float, float]) -> str:
    """``2`` for (2, 2), ``2×3`` for (2, 3): a per-axis value as the summary prints it."""
    a, b = (f"{v:g}" for v in values)
    return a if a == b else f"{a}×{b}"


def field_text(field: ReceptiveField) -> str:
    """``receptive field 5×5, jump 2, start 1.5`` (h×w where the axes differ)."""
    size = "×".join(map(str, field.size))
    return f"receptive field {size}, jump {pair_text(field.jump)}, start {pair_text(field.start)}"


def fields_figure(
    image: np.ndarray, units: list[StrongestUnit], field: ReceptiveField, title: str
) -> Figure:
    """The model input ``image`` ((H, W) grey or (H, W, 3) in 0..1) once per channel, with the
    box of that channel's strongest unit as a rectangle (pixel edges: a box from column 2 to 4
    spans x = 1.5..4.5). Tiles are titled ``ch <c> @ (y, x)``; the title has the field's size,
    jump and start."""
    shown = units[:MAX_MAPS]
    rows, columns = grid_shape(len(shown), GRID_COLUMNS)
    h, w = image.shape[:2]
    fig = new_figure(columns * TILE_IN + 0.4, rows * (TILE_IN * h / w + 0.25) + 0.9)
    axes = fig.subplots(rows, columns, squeeze=False)
    from matplotlib.patches import Rectangle

    for i, ax in enumerate(axes.flat):
        if i >= len(shown):
            ax.set_axis_off()
            continue
        unit = shown[i]
        show_image(ax, image)
        box = unit.box
        ax.add_patch(
            Rectangle(
                (box.left - 0.5, box.top - 0.5),
                box.width,
                box.height,
                fill=False,
                edgecolor=BOX_COLOUR,
                linewidth=1.5,
            )
        )
        ax.set_title(f"ch {unit.channel} @ ({unit.y}, {unit.x})", fontsize=7, pad=2)
    more = "" if len(units) <= MAX_MAPS else f" (first {MAX_MAPS} of {len(units)} channels)"
    fig.suptitle(
        f"{title}: {field_text(field)}\nthe input each channel's most active unit sees{more}",
        fontsize=10,
    )
    return fig
