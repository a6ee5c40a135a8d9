"""Learning-rate schedules: ``schedule_from_config(cfg, base_lr, total_steps)`` -> lr(step).

Steps count from 0. Types (each with optional ``warmup_steps`` w: lr rises linearly as
base_lr * (step + 1) / w for step < w, then the schedule runs over the remaining steps):
- "constant": base_lr;
- "step" (step_size, gamma=0.1): base_lr * gamma ** (s // step_size);
- "cosine" (min_lr=0): min_lr + (base_lr - min_lr) * (1 + cos(pi * s / S)) / 2, s clipped to S,
  S = total_steps - w.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from core.errors import SpecError

_OPTIONS = {
    "constant": {"warmup_steps"},
    "step": {"warmup_steps", "step_size", "gamma"},
    "cosine": {"warmup_steps", "min_lr"},
}


def _int(name: str, v: Any, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise SpecError(f"schedule option {name!r} must be an int >= {lo}, got {v!r}")
    return v


def _float(name: str, v: Any, lo: float) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < lo:
        raise SpecError(f"schedule option {name!r} must be a number >= {lo}, got {v!r}")
    return float(v)


def schedule_from_config(
    cfg: dict[str, Any] | None, base_lr: float, total_steps: int
) -> Callable[[int], float]:
    """Build lr(step) from ``cfg`` ({"type": ..., **options}); None means constant base_lr."""
    base = _float("base_lr", base_lr, 0.0)
    total = _int("total_steps", total_steps, 0)
    if cfg is None:
        cfg = {"type": "constant"}
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise SpecError(f"schedule config must be an object with a 'type', got {cfg!r}")
    options = dict(cfg)
    kind = options.pop("type")
    if kind not in _OPTIONS:
        raise SpecError(f"unknown schedule type {kind!r}; known types: {', '.join(_OPTIONS)}")
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        raise SpecError(
            f"{kind}: unknown schedule option(s) {unknown}; known: {sorted(_OPTIONS[kind])}"
        )
    warmup = _int("warmup_steps", options.get("warmup_steps", 0), 0)

    main: Callable[[int], float]
    if kind == "constant":

        def main(s: int) -> float:
            return base

    elif kind == "step":
        if "step_size" not in options:
            raise SpecError("step: schedule option 'step_size' is required")
        size = _int("step_size", options["step_size"], 1)
        gamma = _float("gamma", options.get("gamma", 0.1), 0.0)

        def main(s: int) -> float:
            return base * gamma ** (s // size)

    else:
        min_lr = _float("min_lr", options.get("min_lr", 0.0), 0.0)
        if min_lr > base:
            raise SpecError(f"cosine: schedule option 'min_lr' ({min_lr}) exceeds base lr ({base})")
        span = max(total - warmup, 1)

        def main(s: int) -> float:
            frac = min(s, span) / span
            return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def lr(step: int) -> float:
        if step < 0:
            raise SpecError(f"schedule step must be >= 0, got {step}")
        if step < warmup:
            return base * (step + 1) / warmup
        return main(step - warmup)

    return lr
