"""Which algorithm computes a convolution: im2col + GEMM, or Winograd F(2x2,3x3) / F(4x4,3x3).

Winograd (:mod:`core.kernels.winograd`) applies to 3x3, stride-1, dilation-1, ungrouped convs;
everything else is im2col + GEMM (:mod:`core.kernels.conv`). The environment variable
``CNN_CONV_ALGORITHM`` decides, read at each decision (so tests can force each path):

- ``auto`` (default): measure once per machine. The first time a shape is seen on the machine,
  both tile sizes and im2col run on a small random batch on the calling thread (each 7 times,
  interleaved, best time kept: the least disturbed by other load); Winograd wins only if at
  least ``MARGIN`` (15%) faster than im2col, F(4x4) over F(2x2) only if 5% faster (F(2x2) is
  more precise). The choice is recorded per shape and dtype in the machine's choices file
  (:mod:`core.machine_choices`, next to the compile cache, keyed like it; the first process to
  record a shape wins) and kept for the life of the process: every process on the machine --
  workers, servers, benches -- computes a shape with the same algorithm, so they agree to the
  bit even where the algorithms are within noise of each other, and a layer never changes
  algorithm between calls.
- ``im2col``: never Winograd; ``winograd`` / ``winograd4``: F(4x4,3x3) wherever it applies;
  ``winograd2``: F(2x2,3x3) wherever it applies.

Used by :class:`core.layers.Conv2D` (training and the layer-by-layer forward; backward-data is
decided as the forward conv of the output gradient) and by the inference plan
(:meth:`core.inference.PlanBuilder.conv`, which packs the filter transform once).

The weight gradient of a conv whose backward-data runs Winograd is decided on its own
(:func:`weight_grad_tile`, the same setting and rules, measured against im2col's weight gradient
:mod:`core.kernels.conv_wgrad` with :mod:`core.kernels.winograd_wgrad`; cached per forward shape
apart from the forward choices). A conv whose backward-data runs im2col keeps im2col's combined
backward (dx, dW and db in one pass over the columns).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from core import machine_choices
from core.kernels import blas
from core.kernels import conv as conv_k
from core.kernels import conv_wgrad as wgrad_k
from core.kernels import winograd as wino_k
from core.kernels import winograd_wgrad as wino_wgrad_k

log = logging.getLogger(__name__)

ENV = "CNN_CONV_ALGORITHM"
CHOICES: dict[str, int | None] = {
    "auto": None,
    "im2col": 0,
    "winograd": 4,
    "winograd4": 4,
    "winograd2": 2,
}
MARGIN = 0.85  # Winograd must take at most this fraction of im2col's time
LARGE_TILE_MARGIN = 0.95  # F(4x4) must take at most this fraction of F(2x2)'s time
# The measuring batch holds about this much im2col work (1 to 16 samples): enough tiles for the
# Winograd GEMMs to reach the size they have in use (an inference chunk, a training batch share);
# 20 MFLOP (2 samples of 32->64 at 16x16) made F(4x4) look slower than im2col, as at batch 1.
MEASURE_FLOPS = 80e6
MEASURE_REPS = 7
# Scratch per Winograd GEMM batch: V (a*a, C, T) + M (a*a, F, T) values within this many bytes
# (about the per-core L2), but at least MIN_BLOCK tiles T so the GEMMs are not degenerate.
BLOCK_BYTES = 768 * 1024
MIN_BLOCK, MAX_BLOCK = 16, 256


class AlgorithmSettingError(ValueError):
    """CNN_CONV_ALGORITHM holds an unknown value."""


@dataclass(frozen=True)
class ConvShape:
    """A stride-1 3x3 convolution as the algorithm choice sees it (per sample)."""

    channels: int
    height: int
    width: int
    filters: int
    out_height: int
    out_width: int
    pad_top: int
    pad_left: int
    dtype: str


def setting() -> str:
    """The value of CNN_CONV_ALGORITHM (default ``auto``); unknown values raise."""
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise AlgorithmSettingError(f"{ENV}={value!r} is not one of {', '.join(CHOICES)}")
    return value


def applies(
    kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], groups: int
) -> bool:
    """Whether Winograd F(m x m, 3 x 3) can compute this convolution."""
    return (
        tuple(kernel) == (3, 3)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
    )


def block_rows(m: int, channels: int, filters: int, out_width: int, itemsize: int) -> int:
    """Tile rows per batch of Winograd GEMMs (each row holds TW = ceil(OW / m) tiles): as many
    as keep V and M within BLOCK_BYTES, at least MIN_BLOCK tiles, at most MAX_BLOCK."""
    tw = -(-out_width // m)
    per_tile = (m + 2) ** 2 * (channels + filters) * itemsize
    want = max(MIN_BLOCK, min(MAX_BLOCK, BLOCK_BYTES // per_tile))
    return max(1, want // tw)


_lock = threading.Lock()
_chosen: dict[ConvShape, int] = {}


def tile_size(shape: ConvShape) -> int:
    """Winograd output tile size m (2 or 4) for this convolution, or 0 for im2col (the caller
    has checked :func:`applies`)."""
    forced = CHOICES[setting()]
    if forced is not None:
        return forced
    m = _chosen.get(shape)
    if m is not None:
        return m
    with _lock:  # one measurement per shape, even when threads build plans at once
        m = _chosen.get(shape)
        if m is None:
            m = _machine_choice(shape)
            _chosen[shape] = m
    return m


def shape_key(shape: ConvShape, kind: str = "winograd_tile") -> str:
    """The shape's key in the machine's choices file (:mod:`core.machine_choices`); `kind`
    tells the decisions apart (the forward's tile, the weight gradient's)."""
    s = shape
    return (
        f"{kind}:{s.channels}x{s.height}x{s.width}->{s.filters}x{s.out_height}x"
        f"{s.out_width}:pad{s.pad_top},{s.pad_left}:{s.dtype}"
    )


def _machine_choice(
    shape: ConvShape,
    kind: str = "winograd_tile",
    measure: Callable[[ConvShape], int] | None = None,
) -> int:
    """The machine's recorded choice for the shape (measured and recorded if there is none);
    a recorded value that is not a tile size is not used (this process measures its own)."""
    run = measure or _measure
    key = shape_key(shape, kind)
    m = machine_choices.choose(key, lambda: run(shape))
    if isinstance(m, int) and (m == 0 or m in wino_k.TILES):
        return m
    log.warning("ignoring the recorded choice %r for %s: not 0 or a tile size", m, key)
    return run(shape)


def measured() -> dict[ConvShape, int]:
    """The choices made so far in this process, measured or read (for benches and logs)."""
    return dict(_chosen)


def _timing_input(shape: ConvShape) -> tuple[int, np.ndarray]:
    """The sample count the measurements time (about MEASURE_FLOPS of direct multiply-adds,
    1-16 samples) and a seeded random input of the shape."""
    per_sample = 2.0 * shape.channels * shape.filters * 9 * shape.out_height * shape.out_width
    n = int(max(1, min(16, round(MEASURE_FLOPS / per_sample))))
    x = np.random.default_rng(0).standard_normal((n, shape.channels, shape.height, shape.width))
    return n, x.astype(shape.dtype)


def _fastest(run: Callable[[int, int], None]) -> int:
    """0 (im2col), 2 or 4 by timing ``run(m, fptr)`` for each on the calling thread alone
    (best of MEASURE_REPS after one untimed round), by the margins of the module docstring."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # per-sample cost, without pool wake-ups (this thread only)
    try:
        with blas.numpy_blas(1) as fptr:
            best = {0: np.inf, 2: np.inf, 4: np.inf}
            for rep in range(MEASURE_REPS + 1):
                for m in best:
                    t0 = time.perf_counter()
                    run(m, fptr)
                    elapsed = time.perf_counter() - t0
                    if rep > 0:  # the first round may compile or load from the cache
                        best[m] = min(best[m], elapsed)
    finally:
        numba.set_num_threads(threads)
    small = 4 if best[4] <= LARGE_TILE_MARGIN * best[2] else 2
    return small if best[small] <= MARGIN * best[0] else 0


def _measure(shape: ConvShape) -> int:
    """0, 2 or 4 by timing the three forward kernels (see the module docstring)."""
    dtype = np.dtype(shape.dtype)
    c, f, ow = shape.channels, shape.filters, shape.out_width
    n, x = _timing_input(shape)
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype)
    b = np.zeros(f, dtype)
    out = np.empty((n, f, shape.out_height, ow), dtype)
    pt, pl = shape.pad_top, shape.pad_left
    packed: dict[int, tuple[np.ndarray, int]] = {}
    for m in wino_k.TILES:
        u = np.empty(((m + 2) ** 2, f, c), dtype)
        wino_k.winograd_filter(w, m, u)
        packed[m] = (u, block_rows(m, c, f, ow, dtype.itemsize))

    def run(m: int, fptr: int) -> None:
        if m == 0:
            conv_k.conv2d_forward(x, w, b, 1, 1, pt, pl, 1, 1, n, out, fptr)
        else:
            u, block = packed[m]
            wino_k.winograd_forward(x, u, b, m, pt, pl, block, 1, out, fptr)

    return _fastest(run)


def compile_candidates(dtype: str = "float32") -> None:
    """Run every candidate kernel of both decisions (forward; weight gradient) once on a tiny
    shape, with the argument types a layer passes: the worker's warm-up calls it so that a job
    whose measurement picks any mix (e.g. Winograd backward-data with im2col's weight gradient)
    compiles nothing. Records no choice."""
    shape = ConvShape(4, 8, 8, 4, 8, 8, 1, 1, dtype)
    _measure(shape)
    _measure_weight_grad(shape)


# ------------------------------------------------------------------------- weight gradient

_chosen_weight_grad: dict[ConvShape, int] = {}


def weight_grad_tile(shape: ConvShape) -> int:
    """Winograd tile size (2 or 4) for the weight gradient of the convolution ``shape`` (its
    forward shape), or 0 for im2col + GEMM. Forced settings apply as to the forward; ``auto``
    takes the machine's recorded choice, measured once per shape and machine by the forward's
    margins (:func:`_measure_weight_grad`)."""
    forced = CHOICES[setting()]
    if forced is not None:
        return forced
    m = _chosen_weight_grad.get(shape)
    if m is not None:
        return m
    with _lock:
        m = _chosen_weight_grad.get(shape)
        if m is None:
            m = _machine_choice(shape, "wgrad_tile", _measure_weight_grad)
            _chosen_weight_grad[shape] = m
    return m


def measured_weight_grad() -> dict[ConvShape, int]:
    """The weight-gradient choices made so far in this process, measured or read."""
    return dict(_chosen_weight_grad)


def _measure_weight_grad(shape: ConvShape) -> int:
    """0, 2 or 4 by timing im2col's and both tile sizes' weight gradients (batch size,
    repetitions and margins as :func:`_measure`)."""
    dtype = np.dtype(shape.dtype)
    c, f = shape.channels, shape.filters
    n, x = _timing_input(shape)
    dout = np.random.default_rng(1).standard_normal((n, f, shape.out_height, shape.out_width))
    dout = dout.astype(dtype)
    w = np.zeros((f, c, 3, 3), dtype)
    dw, db = np.zeros_like(w), np.zeros(f, dtype)
    partial = np.empty((1, f, c * 9 + 1), dtype)
    pt, pl = shape.pad_top, shape.pad_left
    blocks = {m: block_rows(m, c, f, shape.out_width, dtype.itemsize) for m in wino_k.TILES}

    def run(m: int, fptr: int) -> None:
        if m == 0:
            wgrad_k.conv2d_weight_grad(x, w, dout, 1, 1, pt, pl, 1, 1, n, dw, db, partial, fptr)
        else:
            wino_wgrad_k.winograd_weight_grad(x, dout, m, pt, pl, blocks[m], 1, dw, db, fptr)

    return _fastest(run)
