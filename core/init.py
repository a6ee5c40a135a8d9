"""Weight initialisers drawing from an explicit, seeded ``np.random.Generator``.

He (Kaiming) normal suits ReLU networks: std = sqrt(2 / fan_in).
Xavier (Glorot) uniform suits tanh/sigmoid/linear: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
"""

from __future__ import annotations

import numpy as np

from core.errors import SpecError


def _check_fan(name: str, value: int) -> None:
    if value <= 0:
        raise SpecError(f"{name} must be a positive integer, got {value}")


def he_normal(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Normal(0, sqrt(2 / fan_in)) of ``shape``, computed in float64 then cast to ``dtype``."""
    _check_fan("fan_in", fan_in)
    std = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal(shape) * std).astype(dtype)


def xavier_uniform(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Uniform(-a, a), a = sqrt(6 / (fan_in + fan_out)), of ``shape`` cast to ``dtype``."""
    _check_fan("fan_in", fan_in)
    _check_fan("fan_out", fan_out)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
