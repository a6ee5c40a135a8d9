"""This library's side of `bench.core_ops`: a net whose layers the timings can walk one by one,
and its training and inference speed."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.timing import Result, median_us, throughput, warm
from core.layers import Conv2D, Layer
from core.losses import softmax_cross_entropy
from core.model import Sequential
from core.optim import Adam


class Net:
    """A :class:`Sequential` plus the layer-by-layer loops the training timings use."""

    def __init__(self, arch: list[dict[str, Any]], in_shape: tuple[int, int, int], seed: int = 0):
        self.model = Sequential.from_spec(arch, in_shape, seed=seed)
        self.layers: list[Layer] = self.model.layers
        self.shapes: list[tuple[int, ...]] = [in_shape, *self.model.shapes]
        self.params = self.model.parameters()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, d: np.ndarray) -> None:
        for layer in reversed(self.layers):
            d = layer.backward(d)

    def conv_flops(self, batch: int) -> int:
        """Forward multiply-adds x 2 of the conv layers for a batch."""
        total = 0
        for layer, shape in zip(self.layers, self.shapes, strict=False):
            if isinstance(layer, Conv2D):
                c = shape[0]
                f, oh, ow = layer.out_shape or (0, 0, 0)
                kh, kw = layer.kernel
                total += 2 * batch * f * oh * ow * (c // layer.groups) * kh * kw
        return total


def train_step(net: Net, opt: Adam, x: np.ndarray, y: np.ndarray) -> float:
    """One Adam step on the batch (x, y); returns the loss."""
    out = net.forward(x, training=True)
    _, cost, d = softmax_cross_entropy(out, y)
    opt.zero_grad()
    net.backward(d)
    opt.step()
    return cost


def bench_ours(net: Net, in_shape: tuple[int, int, int], budget: float, warm_calls: int) -> Result:
    """Training images/s at batch 64 (Adam, lr 1e-3) on synthetic data, then batch-1 latency
    and batch-64 throughput of ``predict_proba`` (the compiled inference plan, softmax
    included): the path users get."""
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    y64 = rng.integers(0, 10, 64)
    x1 = x64[:1].copy()
    opt = Adam(net.params, lr=1e-3)

    def step() -> None:
        train_step(net, opt, x64, y64)

    warm(step, warm_calls)
    train = throughput(step, 64, budget, 5)
    res = Result(train_ips=train.images_per_s, train_cpu=train.images_per_cpu_s)
    model = net.model
    warm(lambda: model.predict_proba(x1), warm_calls)
    res.lat1_us = median_us(lambda: model.predict_proba(x1), budget / 2)
    warm(lambda: model.predict_proba(x64), warm_calls)
    infer = throughput(lambda: model.predict_proba(x64), 64, budget / 2, 5)
    res.inf64_ips, res.inf64_cpu = infer.images_per_s, infer.images_per_cpu_s
    return res
