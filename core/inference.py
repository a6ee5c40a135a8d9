"""Inference engine for :class:`core.model.Sequential`: the whole network in one compiled call.

``InferencePlan.compile(model)`` turns the layer list into a small program for
:func:`core.kernels.infer.run_program`:

- conv2d / dense carry their bias and the activation that follows them; a batchnorm2d right after
  a conv2d is fused into that conv's epilogue (``y = (conv + b) * s + t`` with s, t computed per
  call from the live running statistics, so the plan never goes stale when weights or statistics
  change in place); dropout (eval) and flatten vanish;
- weights are views of the model's own parameter arrays (no copies); a plan notices when a
  parameter array is *replaced* (:meth:`InferencePlan.is_current`) and the model recompiles it;
- scratch memory (two activation buffers, the im2col column matrix, the GEMM result and the padded
  planes) is allocated once per thread count and reused, so no call page-faults fresh memory;
- a batch is split over the Numba threads (whole network per chunk of samples); a batch that fits
  one chunk (e.g. batch 1) runs on the calling thread with no thread-pool wake-up.

Results equal the layer-by-layer ``model.forward(x, training=False)`` to float32 rounding.
Calls are serialised by a lock (the scratch is shared), so one plan may be used from any thread.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from core import kernels
from core.errors import ShapeError
from core.kernels import blas
from core.kernels import infer as ik

if TYPE_CHECKING:
    from core.model import Sequential

# Bytes of im2col column matrix per GEMM: lowered columns stay in the per-core L2 (1-2 MiB).
COLS_BUDGET = 768 * 1024
# Bytes of one activation buffer: samples per chunk = this / the largest per-sample activation.
# Measured (CPU time, VGG-small b64): chunk 2 / 4 / 16 -> 1,360 / 1,620 / 1,860 img per CPU-s
# (dense layers become real GEMMs); beyond 16 no gain.
ACT_BUDGET = 2 * 1024 * 1024
MAX_CHUNK = 16
COMPACT_JUNK = 0.2  # stride-1 convs with more junk grid columns per valid one lower compactly
# A batch is split over the threads only in tasks of at least this many multiply-adds.
TASK_MIN_MACS = 1_000_000


def _direct_rule(k: int, filters_per_group: int, plane: int) -> bool:
    """Stride-1 convs computed by direct shifted-plane accumulation instead of im2col + GEMM:
    small reductions, where BLAS runs far from its peak (see bench.core_ops's per-op table)."""
    return filters_per_group <= 8


DIRECT_CONV = _direct_rule

_ACTIVATIONS = {"relu": ik.ACT_RELU, "leaky_relu": ik.ACT_LEAKY, "sigmoid": ik.ACT_SIGMOID}
_ACTIVATIONS["tanh"] = ik.ACT_TANH


class UnsupportedModel(ValueError):
    """The model holds a layer the inference engine does not know (use the layer path)."""


class InferencePlan:
    """A compiled inference program for one model; see the module docstring."""

    def __init__(
        self,
        prog: np.ndarray,
        fparams: np.ndarray,
        arrays: list[np.ndarray],
        watched: list[tuple[Any, str, np.ndarray]],
        input_shape: tuple[int, ...],
        num_classes: int,
        dtype: np.dtype,
        sizes: dict[str, int],
        labels: list[str],
    ) -> None:
        self.prog = prog
        self.fparams = fparams
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.dtype = dtype
        self.labels = labels  # one per op, e.g. "0 conv2d+relu"
        self._arrays_py = arrays
        self._watched = watched
        self._sizes = sizes
        self._arrays: Any = None  # numba typed list, built on first use
        self._scratch: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        layout = np.zeros(ik.NLAYOUT, np.int64)
        act = sizes["chunk"] * sizes["act"]
        layout[ik.L_A] = 0
        layout[ik.L_B] = act
        layout[ik.L_COLS] = 2 * act
        layout[ik.L_RES] = layout[ik.L_COLS] + sizes["cols"]
        layout[ik.L_XP] = layout[ik.L_RES] + sizes["res"]
        layout[ik.L_CHUNK] = sizes["chunk"]
        layout[ik.L_ACT] = act
        layout[ik.L_MINTASK] = max(1, -(-TASK_MIN_MACS // max(1, sizes["macs"])))
        self.layout = layout
        self.scratch_elements = int(layout[ik.L_XP] + sizes["xp"])

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def compile(cls, model: Sequential) -> InferencePlan:
        """Program for ``model`` (eval mode); :class:`UnsupportedModel` for an unknown layer."""
        from core import layers as L

        dtype = np.dtype(model.dtype)
        rows: list[np.ndarray] = []
        fparams: list[tuple[float, float]] = []
        labels: list[str] = []
        arrays: list[np.ndarray] = []
        watched: list[tuple[Any, str, np.ndarray]] = []
        itemsize = dtype.itemsize
        sizes = {"cols": 1, "res": 1, "xp": 1}
        act_max = math.prod(model.input_shape)
        for s in model.shapes:
            act_max = max(act_max, math.prod(s))
        chunk = max(1, min(MAX_CHUNK, ACT_BUDGET // (act_max * itemsize)))

        def add(obj: Any, name: str) -> int:
            arr = getattr(obj, name)
            if arr.dtype != dtype or not arr.flags.c_contiguous:
                raise UnsupportedModel(f"array {name} is not a contiguous {dtype} array")
            watched.append((obj, name, arr))
            arrays.append(arr.reshape(-1))
            return len(arrays) - 1

        def new_row(op: int, in_size: int, out_size: int, label: str) -> np.ndarray:
            r = np.full(ik.NFIELDS, 0, np.int64)
            r[ik.F_OP], r[ik.F_IN], r[ik.F_OUT] = op, in_size, out_size
            r[ik.F_WI] = r[ik.F_BI] = r[ik.F_BN] = -1
            rows.append(r)
            fparams.append((0.0, 0.0))
            labels.append(label)
            return r

        def image(r: np.ndarray, shape: tuple[int, ...], out: tuple[int, ...]) -> None:
            r[ik.F_C], r[ik.F_H], r[ik.F_W] = shape
            r[ik.F_F], r[ik.F_OH], r[ik.F_OW] = out

        in_shape: tuple[int, ...] = model.input_shape
        for index, layer in enumerate(model.layers):
            out_shape = model.shapes[index]
            in_size, out_size = math.prod(in_shape), math.prod(out_shape)
            last = rows[-1] if rows else None
            label = f"{index} {layer.type_name}"
            if isinstance(layer, L.Flatten | L.Dropout):
                if last is not None:
                    labels[-1] += f"+{layer.type_name}"
            elif isinstance(layer, L.Conv2D):
                assert layer.weight is not None and layer.pads is not None
                r = new_row(ik.OP_CONV, in_size, out_size, label)
                image(r, in_shape, out_shape)
                r[ik.F_G] = layer.groups
                r[ik.F_KH], r[ik.F_KW] = layer.kernel
                r[ik.F_SH], r[ik.F_SW] = layer.stride
                r[ik.F_PT], r[ik.F_PL] = layer.pads[0], layer.pads[2]
                r[ik.F_DH], r[ik.F_DW] = layer.dilation
                r[ik.F_WI] = add(layer.weight, "value")
                if layer.bias is not None:
                    r[ik.F_BI] = add(layer.bias, "value")
                _conv_tiling(r, chunk, itemsize, sizes)
            elif isinstance(layer, L.Dense):
                assert layer.weight is not None
                r = new_row(ik.OP_DENSE, in_size, out_size, label)
                r[ik.F_WI] = add(layer.weight, "value")
                if layer.bias is not None:
                    r[ik.F_BI] = add(layer.bias, "value")
            elif isinstance(layer, L.MaxPool2D | L.AvgPool2D):
                assert layer.pads is not None
                op = ik.OP_MAXPOOL if isinstance(layer, L.MaxPool2D) else ik.OP_AVGPOOL
                r = new_row(op, in_size, out_size, label)
                image(r, in_shape, out_shape)
                r[ik.F_KH], r[ik.F_KW] = layer.size
                r[ik.F_SH], r[ik.F_SW] = layer.stride
                r[ik.F_PT], r[ik.F_PL] = layer.pads[0], layer.pads[2]
            elif isinstance(layer, L.GlobalAvgPool2D):
                r = new_row(ik.OP_GAP, in_size, out_size, label)
                r[ik.F_C], r[ik.F_H], r[ik.F_W] = in_shape
            elif isinstance(layer, L.BatchNorm2D):
                assert layer.weight is not None and layer.bias is not None
                fuse = (
                    last is not None
                    and last[ik.F_OP] == ik.OP_CONV
                    and last[ik.F_BN] < 0
                    and last[ik.F_ACT] == ik.ACT_NONE
                )
                if fuse:
                    assert last is not None
                    r = last
                    labels[-1] += "+batchnorm2d"
                else:
                    r = new_row(ik.OP_AFFINE, in_size, out_size, label)
                    r[ik.F_C] = in_shape[0]
                r[ik.F_BN] = add(layer.weight, "value")
                add(layer.bias, "value")
                add(layer, "running_mean")
                add(layer, "running_var")
                fparams[-1] = (fparams[-1][0], layer.eps)
            elif layer.type_name in _ACTIVATIONS and type(layer) in L.LAYER_TYPES.values():
                alpha = float(getattr(layer, "alpha", 0.0))
                fusable = (ik.OP_CONV, ik.OP_DENSE, ik.OP_AFFINE, ik.OP_ACT)
                if last is not None and last[ik.F_OP] in fusable and last[ik.F_ACT] == 0:
                    r = last
                    labels[-1] += f"+{layer.type_name}"
                else:
                    r = new_row(ik.OP_ACT, in_size, out_size, label)
                r[ik.F_ACT] = _ACTIVATIONS[layer.type_name]
                fparams[-1] = (alpha, fparams[-1][1])
            else:
                raise UnsupportedModel(f"layer {index} ({type(layer).__name__}) is not supported")
            in_shape = out_shape
        if not rows:
            raise UnsupportedModel("the model has no computing layer")
        sizes["chunk"] = chunk
        sizes["act"] = act_max
        sizes["macs"] = _macs(rows)
        return cls(
            np.stack(rows),
            np.asarray(fparams, np.float64).reshape(-1, 2),
            arrays,
            watched,
            model.input_shape,
            model.num_classes,
            dtype,
            sizes,
            labels,
        )

    def is_current(self) -> bool:
        """False when a parameter or buffer array the plan reads was replaced by another one."""
        return all(getattr(obj, name) is arr for obj, name, arr in self._watched)

    # --- running ----------------------------------------------------------------------------

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> logits (N, K) in the model dtype."""
        return self._run(x, False)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> softmax probabilities (N, K) float32 (computed in float64)."""
        out = self._run(x, True)
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def _run(self, x: np.ndarray, softmax: bool, ops: int | None = None) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"input has shape {tuple(x.shape)}, the model expects (N, "
                f"{', '.join(map(str, self.input_shape))})"
            )
        n = x.shape[0]
        prog = self.prog if ops is None else self.prog[:ops]
        k = self.num_classes if ops is None else int(prog[-1, ik.F_OUT])
        out = np.empty((n, k), self.dtype)
        if n == 0:
            return out
        x2 = np.ascontiguousarray(x, dtype=self.dtype).reshape(n, -1)
        threads = numba.get_num_threads()
        with self._lock:
            if self._arrays is None:
                kernels.single_threaded_blas()
                typed = numba.typed.List()
                for arr in self._arrays_py:
                    typed.append(arr)
                self._arrays = typed
            scratch = self._scratch.get(threads)
            if scratch is None:
                scratch = np.zeros((threads, self.scratch_elements), self.dtype)
                self._scratch[threads] = scratch
            with blas.numpy_blas(1) as fptr:
                ik.run_program(
                    prog, self.fparams, self._arrays, self.layout, x2, out, scratch, softmax, fptr
                )
        return out

    def profile(self, x: np.ndarray, reps: int = 20) -> list[tuple[str, float]]:
        """Median milliseconds spent in each op for input ``x`` (by timing program prefixes)."""
        import time

        cumulative = []
        for ops in range(1, len(self.labels) + 1):
            self._run(x, False, ops)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                self._run(x, False, ops)
                times.append(time.perf_counter() - t0)
            cumulative.append(float(np.median(times)) * 1e3)
        prev = 0.0
        out = []
        for label, t in zip(self.labels, cumulative, strict=True):
            out.append((label, t - prev))
            prev = t
        return out


def _macs(rows: list[np.ndarray]) -> int:
    """Multiply-adds per sample of the convs and dense layers of a program."""
    total = 0
    for r in rows:
        if r[ik.F_OP] == ik.OP_CONV:
            total += (
                int(r[ik.F_OUT]) * int(r[ik.F_C]) // int(r[ik.F_G]) * int(r[ik.F_KH] * r[ik.F_KW])
            )
        elif r[ik.F_OP] == ik.OP_DENSE:
            total += int(r[ik.F_IN]) * int(r[ik.F_OUT])
    return total


def _conv_tiling(r: np.ndarray, chunk: int, itemsize: int, sizes: dict[str, int]) -> None:
    """Fill the GEMM tiling fields of a conv row and grow the scratch sizes it needs."""
    c, oh, ow = int(r[ik.F_C]), int(r[ik.F_OH]), int(r[ik.F_OW])
    groups, kh, kw = int(r[ik.F_G]), int(r[ik.F_KH]), int(r[ik.F_KW])
    dh, dw = int(r[ik.F_DH]), int(r[ik.F_DW])
    unit = r[ik.F_SH] == 1 and r[ik.F_SW] == 1
    wg = ow + dw * (kw - 1) if unit else ow
    plane = (oh + dh * (kh - 1)) * wg + dw * (kw - 1) if unit else 0
    k = c // groups * kh * kw
    direct = unit and DIRECT_CONV(k, int(r[ik.F_F]) // groups, oh * wg)
    # narrow maps: lower only the OW valid columns of each grid row (LeNet's 10x10 conv: 29% less
    # GEMM work for a strided copy), wide ones copy whole grid rows (contiguous, 6-12% junk)
    compact = unit and not direct and wg - ow > COMPACT_JUNK * ow
    cw = ow if compact or not unit else wg
    per_sample = k * oh * cw * itemsize
    if unit and per_sample > COLS_BUDGET:
        sb, rows = 1, max(1, min(oh, COLS_BUDGET // (k * cw * itemsize)))
    else:
        sb, rows = max(1, min(chunk, COLS_BUDGET // per_sample)), oh
    r[ik.F_SB], r[ik.F_ROWS], r[ik.F_WG], r[ik.F_PLANE] = sb, rows, wg, plane
    r[ik.F_DIRECT], r[ik.F_COMPACT] = int(direct), int(compact)
    if direct:
        sizes["res"] = max(sizes["res"], 2 * oh * wg)
    m = sb * rows * cw
    sizes["cols"] = max(sizes["cols"], k * m)
    sizes["res"] = max(sizes["res"], int(r[ik.F_F]) // groups * m)
    sizes["xp"] = max(sizes["xp"], sb * c * plane)
