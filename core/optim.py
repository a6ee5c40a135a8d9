"""Optimizers sharing one interface: ``step(lr=None)``, ``zero_grad()``, ``state_dict()`` /
``load_state_dict()`` (NumPy arrays only, so state saves to .npz for an exact resume).

Parameters are updated in place (``Parameter.value`` keeps its identity).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from core.errors import SpecError
from core.kernels import optim as optim_k
from core.parameter import Parameter


def _number(owner: str, name: str, v: Any, lo: float, hi: float, *, hi_open: bool = False) -> float:
    ok = isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool)
    if ok:
        v = float(v)
        ok = math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)
    if not ok:
        bracket = ")" if hi_open else "]"
        raise SpecError(
            f"{owner}: option {name!r} must be a number in [{lo}, {hi}{bracket}, got {v!r}"
        )
    return float(v)


class Optimizer:
    """Base optimizer over a list of Parameters.

    ``step(lr)`` applies one update with ``lr`` (default: the constructor's ``lr``) using the
    parameters' current ``grad``; it does not zero the gradients.
    """

    type_name: ClassVar[str] = ""
    #: Arrays of each parameter's shape that the optimizer keeps (memory estimates).
    state_per_parameter: ClassVar[int] = 0

    def __init__(self, params: list[Parameter], lr: float = 1e-3) -> None:
        self.params = list(params)
        if not all(isinstance(p, Parameter) for p in self.params):
            raise SpecError(f"{self.type_name}: params must be a list of Parameter")
        self.lr = _number(self.type_name, "lr", lr, 0.0, math.inf)
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self, lr: float | None = None) -> None:
        lr_now = self.lr if lr is None else float(lr)
        self.steps += 1
        for i, p in enumerate(self.params):
            self._update(i, p, lr_now)

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        raise NotImplementedError

    def _slots(self) -> dict[str, list[np.ndarray]]:
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """{"steps": int64 scalar array, "<slot>.<i>": array per parameter i} (copies)."""
        state = {"steps": np.array(self.steps, dtype=np.int64)}
        for slot, arrays in self._slots().items():
            for i, a in enumerate(arrays):
                state[f"{slot}.{i}"] = a.copy()
        return state

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict` output; missing keys or wrong shapes -> SpecError."""
        if "steps" not in d:
            raise SpecError(f"{self.type_name}: optimizer state has no 'steps'")
        expected = {"steps"}
        for slot, arrays in self._slots().items():
            for i, a in enumerate(arrays):
                key = f"{slot}.{i}"
                expected.add(key)
                if key not in d:
                    raise SpecError(f"{self.type_name}: optimizer state lacks {key!r}")
                src = np.asarray(d[key])
                if src.shape != a.shape:
                    raise SpecError(
                        f"{self.type_name}: optimizer state {key!r} has shape {src.shape}, "
                        f"parameter {i} needs {a.shape}"
                    )
        extra = sorted(set(d) - expected)
        if extra:
            raise SpecError(f"{self.type_name}: unexpected optimizer state keys {extra}")
        for slot, arrays in self._slots().items():
            for i, a in enumerate(arrays):
                a[...] = d[f"{slot}.{i}"]
        self.steps = int(np.asarray(d["steps"]))


class SGD(Optimizer):
    """SGD with momentum (PyTorch convention, no dampening), optional Nesterov, L2 weight decay:
    d = g + wd*w; buf = momentum*buf + d (buf = d at the first step);
    w -= lr * (d + momentum*buf if nesterov else buf)."""

    type_name = "sgd"
    state_per_parameter = 1  # the momentum buffer (allocated even when momentum is 0)

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _number("sgd", "momentum", momentum, 0.0, 1.0, hi_open=True)
        self.weight_decay = _number("sgd", "weight_decay", weight_decay, 0.0, math.inf)
        if not isinstance(nesterov, bool):
            raise SpecError(f"sgd: option 'nesterov' must be true or false, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise SpecError("sgd: option 'nesterov' needs momentum > 0")
        self.nesterov = nesterov
        self.buf = [np.zeros_like(p.value) for p in self.params]

    def _slots(self) -> dict[str, list[np.ndarray]]:
        return {"momentum_buffer": self.buf} if self.momentum else {}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        optim_k.sgd_update(
            p.value.reshape(-1),
            p.grad.reshape(-1),
            self.buf[i].reshape(-1),
            lr,
            self.momentum,
            self.weight_decay,
            self.nesterov,
            self.steps == 1,
        )


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is L2 added to the gradient."""

    type_name = "adam"
    state_per_parameter = 2  # first and second moments
    _decoupled: ClassVar[bool] = False

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] | list[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        t = self.type_name
        if not isinstance(betas, list | tuple) or len(betas) != 2:
            raise SpecError(f"{t}: option 'betas' must be a pair of numbers, got {betas!r}")
        self.betas = (
            _number(t, "betas[0]", betas[0], 0.0, 1.0, hi_open=True),
            _number(t, "betas[1]", betas[1], 0.0, 1.0, hi_open=True),
        )
        self.eps = _number(t, "eps", eps, 0.0, math.inf)
        self.weight_decay = _number(t, "weight_decay", weight_decay, 0.0, math.inf)
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]

    def _slots(self) -> dict[str, list[np.ndarray]]:
        return {"exp_avg": self.m, "exp_avg_sq": self.v}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        wd = self.weight_decay
        optim_k.adam_update(
            p.value.reshape(-1),
            p.grad.reshape(-1),
            self.m[i].reshape(-1),
            self.v[i].reshape(-1),
            lr,
            self.betas[0],
            self.betas[1],
            self.eps,
            self.steps,
            0.0 if self._decoupled else wd,
            wd if self._decoupled else 0.0,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr*wd*w before the Adam step."""

    type_name = "adamw"
    _decoupled = True

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] | list[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
_OPTIONS = {
    "sgd": {"lr", "momentum", "nesterov", "weight_decay"},
    "adam": {"lr", "betas", "eps", "weight_decay"},
    "adamw": {"lr", "betas", "eps", "weight_decay"},
}


def optimizer_from_config(cfg: dict[str, Any], params: list[Parameter]) -> Optimizer:
    """{"type": "sgd"|"adam"|"adamw", "lr": ..., **options} -> Optimizer; unknown -> SpecError."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise SpecError(f"optimizer config must be an object with a 'type', got {cfg!r}")
    options = dict(cfg)
    name = options.pop("type")
    if name not in OPTIMIZER_TYPES:
        raise SpecError(
            f"unknown optimizer type {name!r}; known types: {', '.join(OPTIMIZER_TYPES)}"
        )
    unknown = sorted(set(options) - _OPTIONS[name])
    if unknown:
        raise SpecError(
            f"{name}: unknown option(s) {unknown}; known options: {sorted(_OPTIONS[name])}"
        )
    return OPTIMIZER_TYPES[name](params, **options)
