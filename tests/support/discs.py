"""A generated regression data set: grey images of one filled disc, targets its centre and radius.

Image i (H x W, uint8) is black with a white disc of centre (cx, cy) and radius r in pixels
(cx, cy uniform so the disc lies inside the image, r uniform in ``radius``), anti-aliased by
4x4 supersampling so the targets are not quantised to whole pixels. Targets (N, 3) float32:
``cx``, ``cy``, ``r`` in pixels, in that order (`DISC_TARGETS`).
"""

from __future__ import annotations

import numpy as np

DISC_TARGETS = ("cx", "cy", "r")

#: A small CNN that learns the disc targets (R² > 0.9 on 32x32 discs within a few epochs).
DISC_ARCHITECTURE: list[dict] = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 32},
    {"type": "relu"},
    {"type": "dense", "units": 3},
]


def make_discs(
    n: int, side: int = 32, radius: tuple[float, float] = (3.0, 8.0), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` disc images (n, side, side) uint8 and their targets (n, 3) float32 (cx, cy, r)."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(*radius, size=n)
    cx = rng.uniform(r, side - r)
    cy = rng.uniform(r, side - r)
    sub = 4
    # pixel (row j, column i) covers [i, i+1) x [j, j+1); samples at sub-pixel centres
    grid = (np.arange(side * sub) + 0.5) / sub
    x = np.empty((n, side, side), dtype=np.uint8)
    for k in range(n):
        inside = (grid[None, :] - cx[k]) ** 2 + (grid[:, None] - cy[k]) ** 2 <= r[k] ** 2
        coverage = inside.reshape(side, sub, side, sub).mean(axis=(1, 3))
        x[k] = np.rint(coverage * 255).astype(np.uint8)
    y = np.stack([cx, cy, r], axis=1).astype(np.float32)
    return x, y
