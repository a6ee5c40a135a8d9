"""Where the time goes, for `bench.core_ops`: per-layer forward/backward milliseconds of a
training batch, per fused-op microseconds of the compiled inference plan, and the GFLOP/s the
convolutions reach next to NumPy's own float32 matmul."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.ours import Net
from bench.timing import median_us
from core.layers import Conv2D
from core.losses import softmax_cross_entropy
from core.optim import Adam


def profile_inference(net: Net, in_shape: tuple[int, int, int], reps: int) -> dict[str, Any]:
    """Per fused op microseconds of the inference plan at batch 1 and 64, and the layer path."""
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((64, *in_shape)).astype(np.float32)
    x1 = x64[:1].copy()
    plan = net.model.inference_plan()
    if plan is None:
        return {}
    b1 = plan.profile(x1, reps * 5)
    b64 = plan.profile(x64, reps)
    if len(b1) != len(b64):  # the regimes fused differently: show each program's own ops
        b1 += [("-", float("nan"))] * (len(b64) - len(b1))
        b64 += [("-", float("nan"))] * (len(b1) - len(b64))
    layer1 = median_us(lambda: net.forward(x1), 0.2, reps * 5)
    layer64 = median_us(lambda: net.forward(x64), 0.5, reps)
    return {
        "rows": [(lab, t1 * 1e3, t64 * 1e3) for (lab, t1), (_, t64) in zip(b1, b64, strict=True)],
        "layer_us": (layer1, layer64),
        "plan_us": (np.nansum([t for _, t in b1]) * 1e3, np.nansum([t for _, t in b64]) * 1e3),
        "algorithms": {n: plan.program(n).conv_algorithms() for n in (1, 64)},
    }


def profile_training(net: Net, in_shape: tuple[int, int, int], reps: int) -> dict[str, Any]:
    """Per-layer forward/backward ms per training batch of 64 (plus loss and optimizer)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, *in_shape)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    opt = Adam(net.params, lr=1e-3)
    n = len(net.layers)
    fwd, bwd = np.zeros(n), np.zeros(n)
    loss_t = opt_t = 0.0
    for _ in range(reps):
        h = x
        for i, layer in enumerate(net.layers):
            t0 = time.perf_counter()
            h = layer.forward(h, training=True)
            fwd[i] += time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, d = softmax_cross_entropy(h, y)
        opt.zero_grad()
        loss_t += time.perf_counter() - t0
        for i in range(n - 1, -1, -1):
            t0 = time.perf_counter()
            d = net.layers[i].backward(d)
            bwd[i] += time.perf_counter() - t0
        t0 = time.perf_counter()
        opt.step()
        opt_t += time.perf_counter() - t0
    scale = 1e3 / reps
    conv_idx = [i for i, layer in enumerate(net.layers) if isinstance(layer, Conv2D)]
    conv_f = sum(fwd[i] for i in conv_idx) / reps
    conv_b = sum(bwd[i] for i in conv_idx) / reps
    flops = net.conv_flops(64)
    return {
        "rows": [
            (f"{i:2d} {layer.type_name}", fwd[i] * scale, bwd[i] * scale, net.shapes[i + 1])
            for i, layer in enumerate(net.layers)
        ],
        "loss_ms": loss_t * scale,
        "opt_ms": opt_t * scale,
        "total_ms": (fwd.sum() + bwd.sum() + loss_t + opt_t) * scale,
        "conv_fwd_gflops": flops / conv_f / 1e9 if conv_f else 0.0,
        "conv_train_gflops": 3 * flops / (conv_f + conv_b) / 1e9 if conv_f + conv_b else 0.0,
    }


def conv_infer_gflops(net: Net, in_shape: tuple[int, int, int], batch: int, reps: int) -> float:
    """GFLOP/s of the conv layers' inference forward at `batch` (mean of `reps` after one)."""
    rng = np.random.default_rng(3)
    h = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    spent = 0.0
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            layer.forward(h)
            t0 = time.perf_counter()
            for _ in range(reps):
                out = layer.forward(h)
            spent += (time.perf_counter() - t0) / reps
            h = out
        else:
            h = layer.forward(h)
    return net.conv_flops(batch) / spent / 1e9


def numpy_matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """float32 n x n @ n x n GFLOP/s of NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b  # warm: BLAS thread pool and buffers
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
