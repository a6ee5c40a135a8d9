"""Numerical error of the float32 convolution algorithms against a float64 direct convolution.

Run ``python -m bench.winograd_error [--steps N]``. For each 3x3 conv of VGG-small (and a
LeNet-sized and a many-channel shape) it prints, for im2col + GEMM, Winograd F(2x2,3x3) and
F(4x4,3x3) in float32, the max absolute error, the max error relative to max|y| (the figure
tests/core/test_kernels_winograd.py bounds) and the median element-wise relative error, on

- random weights (He init) and N(0, 1) inputs, and
- trained weights: VGG-small after ``--steps`` Adam steps on a learnable synthetic task, fed its
  own activations (so the inputs are post-ReLU feature maps, as in use).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from core.kernels import blas
from core.kernels import conv as conv_k
from core.kernels import winograd as wk
from core.layers import Conv2D
from core.losses import softmax_cross_entropy
from core.model import Sequential
from core.optim import Adam
from core.zoo import vgg_small


def direct64(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """float64 direct convolution: the sum of the 9 shifted channel contractions."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = x.shape[2] - 2, x.shape[3] - 2
    w = np.asarray(w, np.float64)
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(3):
        for j in range(3):
            y += np.einsum("nchw,fc->nfhw", x[:, :, i : i + oh, j : j + ow], w[:, :, i, j])
    return y + np.asarray(b, np.float64).reshape(1, -1, 1, 1)


def float32_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int, m: int) -> np.ndarray:
    """The float32 kernels: m = 0 im2col + GEMM, else Winograd F(m x m, 3 x 3)."""
    x, w, b = (np.ascontiguousarray(a, np.float32) for a in (x, w, b))
    n, f = x.shape[0], w.shape[0]
    out = np.empty((n, f, x.shape[2] + 2 * pad - 2, x.shape[3] + 2 * pad - 2), np.float32)
    with blas.numpy_blas(1) as fptr:
        if m == 0:
            conv_k.conv2d_forward(x, w, b, 1, 1, pad, pad, 1, 1, 1, out, fptr)
        else:
            u = np.empty(((m + 2) ** 2, f, w.shape[1]), np.float32)
            wk.winograd_filter(w, m, u)
            wk.winograd_forward(x, u, b, m, pad, pad, 8, 1, out, fptr)
    return out


def errors(out: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(max |err|, max |err| / max |ref|, median |err| / |ref| over |ref| > 1e-3 max |ref|)."""
    err = np.abs(out - ref)
    scale = np.abs(ref).max()
    big = np.abs(ref) > 1e-3 * scale
    return float(err.max()), float(err.max() / scale), float(np.median(err[big] / np.abs(ref[big])))


def trained_vgg(steps: int) -> Sequential:
    """VGG-small after `steps` Adam steps on a synthetic task: the class is the brightest of ten
    fixed random patterns mixed into noise (learnable, so the filters move from their init)."""
    model = Sequential.from_spec(vgg_small(), (3, 32, 32), seed=0)
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((10, 3, 32, 32)).astype(np.float32)
    opt = Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        y = rng.integers(0, 10, 64)
        x = 0.5 * rng.standard_normal((64, 3, 32, 32)).astype(np.float32) + patterns[y]
        model.zero_grad()
        _, _, d = softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(d)
        opt.step()
    return model


def report(title: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> None:
    ref = direct64(x, w, b, pad)
    cells = []
    for m, name in ((0, "im2col"), (2, "F(2,3)"), (4, "F(4,3)")):
        a, r, med = errors(float32_conv(x, w, b, pad, m), ref)
        cells.append(f"{name} {a:.1e} {r:.1e} {med:.1e}")
    print(f"{title:<34}" + " | ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.winograd_error", description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="training steps (trained weights)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    print("per algorithm: max abs error, max error / max|y|, median element-wise relative error")
    shapes = ((3, 32, 32), (32, 32, 32), (32, 16, 64), (64, 16, 64), (6, 14, 16), (256, 8, 256))
    for c, h, f in shapes:
        x = rng.standard_normal((8, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((f, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        b = (0.1 * rng.standard_normal(f)).astype(np.float32)
        report(f"random  {c:>3}->{f:<3} {h}x{h}", x, w, b, 1)
    model = trained_vgg(args.steps)
    act = np.random.default_rng(2).standard_normal((8, 3, 32, 32)).astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            assert layer.weight is not None and layer.bias is not None
            title = f"trained {act.shape[1]:>3}->{layer.filters:<3} {act.shape[2]}x{act.shape[3]}"
            report(title, act, layer.weight.value, layer.bias.value, 1)
        act = layer.forward(act)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
