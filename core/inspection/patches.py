"""The test-split patches that most activate each filter of a conv layer.

:class:`TopActivations` keeps, per filter, the ``k`` largest activations seen so far (each
sample's maximum over positions, and where it was): :meth:`TopActivations.update` merges one
batch of maps (B, F, H', W') into it, so the test split streams through in batches and the
memory is one batch's activations plus (F, k) numbers per layer. Ties keep the earlier sample.
:func:`top_activations_reference` is the slow twin: all maps at once, a full sort per filter.

A patch is the input box the unit sees (:func:`core.explain.unit_box`), placed in a tile of the
field's full size; where the field hangs over the image edge the tile shows :data:`OUTSIDE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.explain import feature_maps, unit_box
from core.inspection.canvas import new_figure
from core.pictures import mosaic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from core.model import Sequential
    from core.summary import ReceptiveField

TOP_K = 9
#: Most filters (rows) one figure shows.
MAX_FILTERS = 64
#: Colour of the part of a field outside the image, and between tiles.
OUTSIDE = (0.93, 0.87, 0.75)
GAP = (1.0, 1.0, 1.0)
TILE_IN = 0.5


@dataclass
class TopActivations:
    """Per filter (F) the ``k`` strongest samples so far, strongest first: activation
    ``values`` (F, k), test-split index ``samples`` (F, k) (-1: none yet) and unit position
    ``ys``/``xs`` (F, k)."""

    filters: int
    k: int = TOP_K
    values: np.ndarray = field(init=False)
    samples: np.ndarray = field(init=False)
    ys: np.ndarray = field(init=False)
    xs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.values = np.full((self.filters, self.k), -np.inf)
        self.samples = np.full((self.filters, self.k), -1, np.int64)
        self.ys = np.zeros((self.filters, self.k), np.int64)
        self.xs = np.zeros((self.filters, self.k), np.int64)

    def update(self, maps: np.ndarray, first_sample: int) -> None:
        """Merge maps (B, F, H', W') of test samples ``first_sample .. first_sample + B - 1``."""
        b, f, h, w = maps.shape
        if f != self.filters:
            raise ValueError(f"maps have {f} filters, the tracker {self.filters}")
        flat = maps.reshape(b, f, h * w)
        where = flat.argmax(axis=2)  # (B, F): the first maximum in row-major order
        best = np.take_along_axis(flat, where[..., None], axis=2)[..., 0]
        values = np.concatenate([self.values, best.T.astype(np.float64)], axis=1)
        samples = np.concatenate(
            [self.samples, np.broadcast_to(first_sample + np.arange(b), (f, b))], axis=1
        )
        ys = np.concatenate([self.ys, (where // w).T], axis=1)
        xs = np.concatenate([self.xs, (where % w).T], axis=1)
        # stable sort on -value: among equal activations the earlier sample stays first
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.k]
        self.values = np.take_along_axis(values, order, axis=1)
        self.samples = np.take_along_axis(samples, order, axis=1)
        self.ys = np.take_along_axis(ys, order, axis=1)
        self.xs = np.take_along_axis(xs, order, axis=1)


def top_activations(
    model: Sequential, layers: list[int], batches: Iterable[np.ndarray], k: int = TOP_K
) -> dict[int, TopActivations]:
    """Stream normalised inputs (B, C, H, W) through ``model`` (inference mode) and keep, for
    each of the conv ``layers`` (indices), the ``k`` samples whose maximum over positions is
    largest per filter. Sample indices count from 0 over all batches in order."""
    tops = {i: TopActivations(model.shapes[i][0], k) for i in layers}
    seen = 0
    for batch in batches:
        maps = feature_maps(model, batch, layers)
        for i in layers:
            tops[i].update(maps[i], seen)
        seen += batch.shape[0]
    return tops


def top_activations_reference(
    model: Sequential, layers: list[int], x: np.ndarray, k: int = TOP_K
) -> dict[int, TopActivations]:
    """The same from all inputs ``x`` (N, C, H, W) at once (slow, memory N x maps; the test
    oracle)."""
    maps = feature_maps(model, x, layers)
    out = {}
    for i in layers:
        n, f, h, w = maps[i].shape
        top = TopActivations(f, k)
        for j in range(f):
            flat = maps[i][:, j].reshape(n, h * w)
            peak = flat.max(axis=1)
            order = sorted(range(n), key=lambda s: (-peak[s], s))[:k]
            for r, s in enumerate(order):
                pos = int(np.argmax(flat[s]))
                top.values[j, r] = peak[s]
                top.samples[j, r] = s
                top.ys[j, r], top.xs[j, r] = divmod(pos, w)
        out[i] = top
    return out


def field_patch(image: np.ndarray, field_: ReceptiveField, y: int, x: int) -> np.ndarray:
    """The box unit (y, x) sees in ``image`` ((H, W) or (H, W, 3) in 0..1) as an RGB tile of
    the field's full size (size_h, size_w, 3), :data:`OUTSIDE` where it leaves the image."""
    h, w = image.shape[:2]
    box = unit_box(field_, y, x, h, w)
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    tile = np.empty((*field_.size, 3))
    tile[:] = OUTSIDE
    # the unclipped top-left corner (unit_box's formula before clipping) places the crop
    top = round(field_.start[0] + y * field_.jump[0] - (field_.size[0] - 1) / 2)
    left = round(field_.start[1] + x * field_.jump[1] - (field_.size[1] - 1) / 2)
    dy, dx = box.top - top, box.left - left
    tile[dy : dy + box.height, dx : dx + box.width] = rgb[
        box.top : box.bottom + 1, box.left : box.right + 1
    ]
    return tile


def patches_figure(
    top: TopActivations,
    field_: ReceptiveField,
    image_of: Callable[[int], np.ndarray],
    title: str,
) -> Figure:
    """Rows ``f<i>`` (filters), columns ranks ``1`` .. ``k``: the patch of each of the filter's
    strongest test samples. ``image_of(index)`` gives test sample ``index`` as shown
    ((H, W) or (H, W, 3) in 0..1, at the model's input size)."""
    f = min(top.filters, MAX_FILTERS)
    k = top.k
    sh, sw = field_.size
    tiles = np.empty((f * k, sh, sw, 3))
    tiles[:] = GAP
    cache: dict[int, np.ndarray] = {}
    for j in range(f):
        for r in range(k):
            s = int(top.samples[j, r])
            if s < 0:  # fewer test images than k
                continue
            if s not in cache:
                cache[s] = image_of(s)
            tiles[j * k + r] = field_patch(cache[s], field_, int(top.ys[j, r]), int(top.xs[j, r]))
    gap = max(1, round(max(sh, sw) / 8))
    image = mosaic(tiles, columns=k, gap=gap, fill=1.0)
    side = TILE_IN / max(sh, sw)
    fig = new_figure(image.shape[1] * side + 1.2, image.shape[0] * side + 1.3)
    ax = fig.add_subplot()
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([r * (sw + gap) + (sw - 1) / 2 for r in range(k)], [str(r + 1) for r in range(k)])
    ax.set_yticks([j * (sh + gap) + (sh - 1) / 2 for j in range(f)], [f"f{j}" for j in range(f)])
    ax.tick_params(length=0, labelsize=8)
    ax.set_xlabel("rank (1 = strongest activation)")
    ax.set_ylabel("filter")
    more = "" if top.filters <= MAX_FILTERS else f" (first {MAX_FILTERS} of {top.filters})"
    ax.set_title(f"{title}: top-{k} test patches per filter{more}", fontsize=10)
    return fig
