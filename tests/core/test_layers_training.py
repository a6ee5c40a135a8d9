"""A real (small) training run is itself a test: the library learns a synthetic task."""

from __future__ import annotations

import numpy as np

from core.layers import layer_from_config
from core.losses import softmax_cross_entropy
from core.optim import Adam


def test_small_cnn_learns_bars_orientation():
    rng = np.random.default_rng(0)
    n = 256
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.5
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if y[i]:
            x[i, 0, :, pos[i]] += 2.0
        else:
            x[i, 0, pos[i], :] += 2.0
    arch = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.1},
        {"type": "dense", "units": 2, "init": "xavier"},
    ]
    layers = [layer_from_config(c) for c in arch]
    shape: tuple[int, ...] = (1, 8, 8)
    for layer in layers:
        shape = layer.build(shape, rng)
    params = [p for layer in layers for p in layer.parameters().values()]
    opt = Adam(params, lr=0.02)
    for _ in range(15):
        for b in range(0, n, 32):
            out = x[b : b + 32]
            for layer in layers:
                out = layer.forward(out, training=True)
            _, _, d = softmax_cross_entropy(out, y[b : b + 32])
            opt.zero_grad()
            for layer in reversed(layers):
                d = layer.backward(d)
            opt.step()
    out = x
    for layer in layers:
        out = layer.forward(out, training=False)
    assert (out.argmax(axis=1) == y).mean() > 0.95
