"""Simple, seeded data augmentation on raw NCHW pixel batches (before normalisation).

- ``shift``: translate each image by (dy, dx) drawn uniformly from ``-shift..shift`` pixels,
  filling uncovered pixels with 0 (equivalent to padding by ``shift`` and a random crop);
- ``flip``: mirror each image left-right with probability 1/2.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Augmentation(BaseModel):
    """Augmentation options of a training run."""

    model_config = ConfigDict(extra="forbid")

    shift: int = Field(default=0, ge=0, le=64, description="max translation in pixels per axis")
    flip: bool = Field(default=False, description="random horizontal flip")

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.flip


def augment_batch(x: np.ndarray, config: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Return an augmented copy of ``x`` (N, C, H, W); draws only from ``rng`` (reproducible).

    Random numbers are drawn in a fixed order (shifts, then flips) whatever the options'
    values, so a resumed run consumes ``rng`` exactly as the uninterrupted one.
    """
    n, _, h, w = x.shape
    out = x.copy()
    s = config.shift
    if s > 0:
        shifts = rng.integers(-s, s + 1, size=(n, 2))
        padded = np.zeros((n, x.shape[1], h + 2 * s, w + 2 * s), dtype=x.dtype)
        padded[:, :, s : s + h, s : s + w] = x
        for i in range(n):
            top = s - int(shifts[i, 0])
            left = s - int(shifts[i, 1])
            out[i] = padded[i, :, top : top + h, left : left + w]
    if config.flip:
        flips = rng.random(n) < 0.5
        out[flips] = out[flips][..., ::-1]
    return out
