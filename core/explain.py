"""Seeing inside a model: saliency, feature maps and the input box a unit sees.

``input_gradient(model, x, targets)`` is d score / d input (N, C, H, W) by the library's own
backprop, where the score of sample n is its logit ``targets[n]`` (pre-softmax, so a confident
prediction's gradient does not vanish in a saturated softmax). ``saliency`` reduces it to a map
per sample: max over channels of |gradient| (N, H, W) — Simonyan et al. 2014, "vanilla
gradient". ``input_gradient_reference`` is its slow twin by centred finite differences.

``feature_maps(model, x, indices)`` runs the forward pass and keeps the outputs of the layers
asked for.

``unit_box(field, y, x, height, width)`` is the input region (top, left, bottom, right; inclusive,
clipped to the image) that unit (y, x) of a layer sees, from its receptive field (size, jump,
start) as :mod:`core.summary` computes it: the centre of unit (y, x) is
``start + (y, x) * jump`` and the field spans ``size`` pixels around it.

These functions run the model's layers one by one and leave activation caches and gradients in
them: they must be given a model no other thread uses at the same time (the server keeps a
private copy per model for this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from core.model import Sequential
from core.summary import ReceptiveField


def _one_hot(targets: np.ndarray, classes: int, dtype: np.dtype) -> np.ndarray:
    out = np.zeros((targets.shape[0], classes), dtype)
    out[np.arange(targets.shape[0]), targets] = 1
    return out


def _check_targets(model: Sequential, x: np.ndarray, targets: Iterable[int]) -> np.ndarray:
    t = np.asarray(list(targets), np.int64)
    if t.shape != (x.shape[0],):
        raise ValueError(f"targets: one class index per sample ({x.shape[0]}), got {t.shape}")
    classes = model.num_classes
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"targets: class indices must be in [0, {classes}), got {t.tolist()}")
    return t


def input_gradient(model: Sequential, x: np.ndarray, targets: Iterable[int]) -> np.ndarray:
    """d logit[targets[n]] / d x[n] for every sample: (N, C, H, W) -> (N, C, H, W).

    Inference mode (dropout off, batchnorm running statistics); parameter gradients the pass
    adds are cleared again.
    """
    t = _check_targets(model, x, targets)
    logits = model.forward(x, training=False)
    grad = model.backward(_one_hot(t, logits.shape[1], logits.dtype), input_grad=True)
    model.zero_grad()
    return grad


def input_gradient_reference(
    model: Sequential, x: np.ndarray, targets: Iterable[int], h: float = 1e-3
) -> np.ndarray:
    """The same gradient by centred finite differences of the logit (slow; the test oracle)."""
    t = _check_targets(model, x, targets)
    xs = np.array(x, dtype=model.dtype, copy=True)
    grad = np.zeros(xs.shape, np.float64)
    for n in range(xs.shape[0]):
        sample = xs[n : n + 1]
        flat = sample.reshape(-1)
        g = grad[n].reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = float(model.forward(sample, training=False)[0, t[n]])
            flat[i] = old - h
            down = float(model.forward(sample, training=False)[0, t[n]])
            flat[i] = old
            g[i] = (up - down) / (2 * h)
    return grad


def saliency(
    model: Sequential,
    x: np.ndarray,
    targets: Iterable[int],
    gradient: Callable[[Sequential, np.ndarray, Iterable[int]], np.ndarray] = input_gradient,
) -> np.ndarray:
    """Saliency maps (N, H, W): the max over channels of |d logit[target] / d input|."""
    return np.abs(np.asarray(gradient(model, x, targets))).max(axis=1)


def feature_maps(model: Sequential, x: np.ndarray, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Outputs of layers ``indices`` (0-based, as in the summary) for input x, in inference mode.

    Raises:
        ValueError: an index outside the model's layers (naming the valid range).
    """
    wanted = sorted(set(indices))
    count = len(model.layers)
    bad = [i for i in wanted if not 0 <= i < count]
    if bad:
        raise ValueError(f"layers: indices must be in [0, {count}), got {bad}")
    out: dict[int, np.ndarray] = {}
    h = np.ascontiguousarray(x, dtype=model.dtype)
    last = wanted[-1] if wanted else -1
    for index, layer in enumerate(model.layers[: last + 1]):
        h = layer.forward(h, training=False)
        if index in wanted:
            out[index] = h.copy()
    return out


@dataclass(frozen=True)
class Box:
    """An inclusive pixel rectangle of the input."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1


def unit_box(field: ReceptiveField, y: int, x: int, height: int, width: int) -> Box:
    """The input pixels unit (y, x) of a layer with receptive field ``field`` sees, clipped to
    an input of ``height`` x ``width`` pixels.

    The field's centre is ``start + index * jump`` per axis and it covers ``size`` pixels, so
    it spans ``centre - (size - 1) / 2 .. centre + (size - 1) / 2`` (whole pixels, since start is
    a whole or half pixel exactly when size is odd or even).

    Raises:
        ValueError: a global field (every unit sees the whole input; nothing to box).
    """
    if field.is_global:
        raise ValueError("the layer's receptive field is global: every unit sees the whole input")
    edges = []
    for axis, index in ((0, y), (1, x)):
        centre = field.start[axis] + index * field.jump[axis]
        half = (field.size[axis] - 1) / 2
        edges.append((round(centre - half), round(centre + half)))
    (top, bottom), (left, right) = edges
    return Box(max(top, 0), max(left, 0), min(bottom, height - 1), min(right, width - 1))
