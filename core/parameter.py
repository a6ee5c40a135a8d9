"""Trainable parameter: a value and the gradient accumulated into it."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array and its gradient.

    ``grad`` has the shape and dtype of ``value``; layers' ``backward`` ADDS into it (so a value
    used twice gets the sum of both contributions), ``zero_grad()`` resets it to 0.
    """

    __slots__ = ("grad", "value")

    def __init__(self, value: np.ndarray) -> None:
        self.value: np.ndarray = np.ascontiguousarray(value)
        self.grad: np.ndarray = np.zeros_like(self.value)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def size(self) -> int:
        return int(self.value.size)

    def zero_grad(self) -> None:
        """Set ``grad`` to 0 in place (optimizers may hold a reference to it)."""
        self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.value.dtype})"
