"""Inference engine for :class:`core.model.Sequential`: the whole network in one compiled call.

``InferencePlan.compile(model)`` turns the layer list into a small program for
:func:`core.kernels.infer.run_program`. Every layer describes its own step in
:meth:`core.layers.Layer.plan_step` by calling one :class:`PlanBuilder` method (``conv``,
``dense``, ``max_pool``, ``batch_norm``, ``activation``, ``identity``, ...); the builder knows
no layer types, only the program's ops and the fusion rules:

- conv2d / dense carry their bias and the activation that follows them; a per-channel affine
  (batchnorm2d) right after a conv2d is fused into that conv's epilogue (``y = (conv + b) * s + t``
  with s, t computed per call from the live running statistics, so the plan never goes stale when
  weights or statistics change in place); identity steps (dropout at eval, flatten) vanish;
- weights are views of the model's own parameter arrays (no copies); a plan notices when a
  parameter array is *replaced* (:meth:`InferencePlan.is_current`) and the model recompiles it;
- scratch memory (two activation buffers, the im2col column matrix, the GEMM result and the padded
  planes) is allocated once per thread count and reused, so no call page-faults fresh memory;
- a batch is split over the Numba threads (whole network per chunk of samples); a batch that fits
  one chunk (e.g. batch 1) runs on the calling thread with no thread-pool wake-up;
- one program per batch regime (:data:`REGIMES`): a single sample (latency) and a batch of at
  least :data:`BATCHED_FROM` samples (throughput) may compute a conv by different algorithms
  (blocked direct or im2col + GEMM, each regime with its own measured rule). Both programs are
  built at compile time and share one weight list (the model's arrays, the packed weights and
  Winograd transforms, made once) and one scratch layout.

A layer without a step of its own (the base :meth:`~core.layers.Layer.plan_step`, or a subclass
that overrides ``forward`` but inherits its parent's step) makes :meth:`InferencePlan.compile`
raise :class:`UnsupportedModel`, and the model runs inference layer by layer instead.

Results equal the layer-by-layer ``model.forward(x, training=False)`` to float32 rounding.
Calls are serialised by a lock (the scratch is shared), so one plan may be used from any thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import numba
import numpy as np

from core import conv_algorithms, kernels
from core.errors import ShapeError
from core.kernels import blas, direct
from core.kernels import infer as ik
from core.kernels import winograd as wino_k
from core.parameter import Parameter

if TYPE_CHECKING:
    from core.layers import Layer
    from core.model import Sequential

# Bytes of im2col column matrix per GEMM: lowered columns stay in the per-core L2 (1-2 MiB).
COLS_BUDGET = 768 * 1024
# Bytes of one activation buffer: samples per chunk = this / the largest per-sample activation.
# Measured (CPU time, VGG-small b64): chunk 2 / 4 / 16 -> 1,360 / 1,620 / 1,860 img per CPU-s
# (dense layers become real GEMMs); beyond 16 no gain.
ACT_BUDGET = 2 * 1024 * 1024
MAX_CHUNK = 16
COMPACT_JUNK = 0.2  # stride-1 convs with more junk grid columns per valid one lower compactly
# Dense layers of fewer rows than this use SciPy's BLAS (np.dot), see infer._dense.
_DENSE_BLAS_ROWS = 8
# A single sample's blocked convs of at least this many multiply-adds spread their filter blocks
# over the threads (0: never). Off by default: on the shared 2-core machine under load 8-10,
# waking the passive pool per conv took VGG-small batch 1 from ~1 ms to ~8 ms; a quiet machine
# (wake-up ~10-20 us against 60-150 us convs) was not measured. VGG-small's convs: 0.9-9.4 M.
SPLIT_MACS = 0
# A single sample's dense layers of at least this many multiply-adds split their weight rows over
# the threads (0: never); measured by bench.single_sample_split (see the README).
DENSE_SPLIT_MACS = 0
# A batch is split over the threads only in tasks of at least this many multiply-adds.
TASK_MIN_MACS = 1_000_000


def _direct_rule(k: int, filters_per_group: int, plane: int) -> bool:
    """Stride-1 convs computed by direct shifted-plane accumulation instead of im2col + GEMM:
    small reductions, where BLAS runs far from its peak (see bench.core_ops's per-op table)."""
    return filters_per_group <= 8


DIRECT_CONV = _direct_rule


def _blocked_rule(k: int, filters_per_group: int, oh: int, ow: int) -> bool:
    """Stride-1 float32 convs of a single sample computed by the register-blocked direct kernel
    (core.kernels.direct, weights packed at build; a following 2x2 max pool runs in its
    registers) instead of im2col + GEMM or the shifted-plane path. Measured by
    ``python -m bench.conv_paths`` (us per image at batch 1 with the fused activation and pool,
    one thread's CPU time, best of 7, machine under load ~13, im2col -> blocked): LeNet conv1
    (K 25, F 6, 28x28) 25.6 -> 15.5, conv2 (K 150, F 16, 10x10) 35.6 -> 20.8; VGG-small conv1
    (K 27, F 32, 32x32) 92 -> 108, its 32->64 conv (K 288, 16x16) 190 -> 226: with 32 or more
    filters the GEMM's rows fill its register tiles and it wins (VGG-small's 32-filter conv
    with its pool: 408 -> 326, but that layer is Winograd where it measures faster)."""
    return 4 <= filters_per_group <= 16 and k >= 25


BLOCKED_CONV = _blocked_rule


def _blocked_rule_batched(k: int, filters_per_group: int, oh: int, ow: int) -> bool:
    """:func:`_blocked_rule` for batched inputs (im2col + GEMM then lowers several samples per
    GEMM). Measured as it, at batch 64 (us per image, im2col -> blocked): LeNet conv1 20.7 ->
    7.8, conv2 22.1 -> 10.1; VGG-small conv1 73 -> 91, its 32->64 conv 170 -> 187 (the same
    choice as at batch 1 on these shapes: a batch does not make LeNet's GEMMs, 6 or 16 rows,
    any fuller)."""
    return 4 <= filters_per_group <= 16 and k >= 25


BLOCKED_CONV_BATCHED = _blocked_rule_batched

# Batch regimes: the program a call runs is chosen by its number of samples.
LATENCY = "batch 1"
THROUGHPUT = "batched"
REGIMES = (LATENCY, THROUGHPUT)
BATCHED_FROM = 2  # inputs of at least this many samples run the throughput program

_ACTIVATION_CODES = frozenset({ik.ACT_RELU, ik.ACT_LEAKY, ik.ACT_SIGMOID, ik.ACT_TANH})
# Ops that an activation after them folds into (applied to their output in place).
_TAKES_ACTIVATION = frozenset({ik.OP_CONV, ik.OP_DENSE, ik.OP_AFFINE, ik.OP_ACT})


class UnsupportedModel(ValueError):
    """The model holds a layer with no inference-plan step (the model uses the layer path)."""


class PlanStepError(ValueError):
    """A layer's ``plan_step`` described an op that does not fit the layer's shapes (a bug in
    that layer; raised rather than swallowed, since the compiled kernels do not check bounds)."""


@dataclass(frozen=True)
class Live:
    """The array at ``owner.<attribute>``, read by every call of the plan (a view, never copied).

    In-place changes are seen; rebinding the attribute to another array makes the plan stale
    (:meth:`InferencePlan.is_current`), and the model recompiles it.
    """

    owner: object
    attribute: str


# What a plan step may pass as an array: a Parameter (its ``value``, live), a Live attribute, or
# a fixed array / number (a constant: the plan keeps its own copy, broadcast for a number).
ArraySource: TypeAlias = Parameter | Live | np.ndarray | float


@dataclass(frozen=True)
class Program:
    """The op table of one batch regime: rows of :mod:`core.kernels.infer` fields, per-op
    (activation alpha, BatchNorm eps), and a label per op (e.g. ``"0 conv2d+relu"``)."""

    regime: str
    prog: np.ndarray
    fparams: np.ndarray
    labels: list[str]

    def conv_algorithms(self) -> list[str]:
        """The algorithm of each conv op, in order: ``winograd<m>``, ``blocked`` (the direct
        kernel of :mod:`core.kernels.direct`), ``gemm1x1``, ``direct`` (shifted planes) or
        ``im2col``."""
        names = []
        for r in self.prog[self.prog[:, ik.F_OP] == ik.OP_CONV]:
            if r[ik.F_WINO] > 0:
                names.append(f"winograd{r[ik.F_WINO]}")
            elif r[ik.F_PACK] >= 0:
                names.append("blocked")
            elif r[ik.F_GEMM1]:
                names.append("gemm1x1")
            else:
                names.append("direct" if r[ik.F_DIRECT] else "im2col")
        return names

    @property
    def gemm_convs(self) -> bool:
        """Whether a conv calls a GEMM (im2col or 1x1); the others are Numba loops only."""
        p = self.prog
        blas_path = (p[:, ik.F_PACK] < 0) & (p[:, ik.F_DIRECT] == 0)
        return bool(np.any((p[:, ik.F_OP] == ik.OP_CONV) & blas_path))


class InferencePlan:
    """A compiled inference program per batch regime for one model; see the module docstring."""

    def __init__(
        self,
        programs: dict[str, Program],
        arrays: list[np.ndarray],
        watched: list[tuple[Any, str, np.ndarray]],
        input_shape: tuple[int, ...],
        num_classes: int,
        dtype: np.dtype,
        sizes: dict[str, int],
    ) -> None:
        self.programs = programs
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.dtype = dtype
        self._arrays_py = arrays
        self._watched = watched
        self._sizes = sizes
        self._arrays: Any = None  # numba typed list, built on first use
        self._scratch: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._gemm_convs = {regime: program.gemm_convs for regime, program in programs.items()}
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
        layout[ik.L_SPLIT] = SPLIT_MACS
        layout[ik.L_DENSE_SPLIT] = DENSE_SPLIT_MACS
        self.layout = layout  # one scratch layout: the largest of both programs' needs
        self.scratch_elements = int(layout[ik.L_XP] + sizes["xp"])

    def program(self, samples: int) -> Program:
        """The program that runs an input of ``samples`` samples."""
        return self.programs[THROUGHPUT if samples >= BATCHED_FROM else LATENCY]

    # the batch-1 program's table, for callers that look at one program
    @property
    def prog(self) -> np.ndarray:
        return self.programs[LATENCY].prog

    @property
    def fparams(self) -> np.ndarray:
        return self.programs[LATENCY].fparams

    @property
    def labels(self) -> list[str]:
        return self.programs[LATENCY].labels

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def compile(cls, model: Sequential) -> InferencePlan:
        """Programs for ``model`` (eval mode), one per regime, each layer adding its own step
        through a :class:`PlanBuilder`; :class:`UnsupportedModel` when a layer has no step."""
        shared = SharedArrays(np.dtype(model.dtype))
        programs = {}
        for regime in REGIMES:
            plan = PlanBuilder(model, regime, shared)
            in_shape: tuple[int, ...] = model.input_shape
            for index, layer in enumerate(model.layers):
                plan.describe(index, layer, in_shape, model.shapes[index])
                in_shape = model.shapes[index]
            programs[regime] = plan.program()
        macs = _macs(list(programs[LATENCY].prog))
        act_max = max(math.prod(s) for s in (model.input_shape, *model.shapes))
        sizes = dict(shared.sizes, chunk=shared.chunk(act_max), act=act_max, macs=macs)
        return cls(
            programs,
            shared.arrays,
            shared.watched,
            model.input_shape,
            model.num_classes,
            shared.dtype,
            sizes,
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
        program = self.program(n)
        prog = program.prog if ops is None else program.prog[:ops]
        fparams = program.fparams
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
            if n < _DENSE_BLAS_ROWS and not self._gemm_convs[program.regime]:
                # nothing calls NumPy's BLAS: skip pinning its threads (3 ctypes calls, ~1 us)
                ik.run_program(
                    prog, fparams, self._arrays, self.layout, x2, out, scratch, softmax, 0
                )
                return out
            with blas.numpy_blas(1) as fptr:
                ik.run_program(
                    prog, fparams, self._arrays, self.layout, x2, out, scratch, softmax, fptr
                )
        return out

    def profile(self, x: np.ndarray, reps: int = 20) -> list[tuple[str, float]]:
        """Median milliseconds spent in each op of the program that runs input ``x`` (by timing
        program prefixes)."""
        import time

        labels = self.program(len(x)).labels
        cumulative = []
        for ops in range(1, len(labels) + 1):
            self._run(x, False, ops)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                self._run(x, False, ops)
                times.append(time.perf_counter() - t0)
            cumulative.append(float(np.median(times)) * 1e3)
        prev = 0.0
        out = []
        for label, t in zip(labels, cumulative, strict=True):
            out.append((label, t - prev))
            prev = t
        return out


class SharedArrays:
    """What the programs of one plan share: the array list every program indexes (the model's
    live arrays once each, constants, and arrays derived from weights: packed blocks, Winograd
    transforms, made once), the arrays whose replacement makes the plan stale, and the scratch
    sizes (grown by every program, so one scratch layout serves all)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.arrays: list[np.ndarray] = []
        self.watched: list[tuple[Any, str, np.ndarray]] = []
        self.sizes = {"cols": 1, "res": 1, "xp": 1}
        self._live: dict[int, int] = {}  # id of a live array -> its index (the list keeps it)
        self._derived: dict[tuple[str, int, int], int] = {}

    def chunk(self, act_max: int) -> int:
        """Samples per chunk for a largest per-sample activation of ``act_max`` elements."""
        return max(1, min(MAX_CHUNK, ACT_BUDGET // (act_max * self.dtype.itemsize)))

    def live(self, owner: object, attribute: str, arr: np.ndarray) -> int:
        """Index of the live array ``owner.<attribute>`` (``arr``), added and watched once."""
        index = self._live.get(id(arr))
        if index is None:
            self.watched.append((owner, attribute, arr))
            self.arrays.append(arr.reshape(-1))
            index = self._live[id(arr)] = len(self.arrays) - 1
        return index

    def derived(self, key: tuple[str, int, int], make: Callable[[], list[np.ndarray]]) -> int:
        """Index of the first of the arrays ``make()`` returns for ``key`` (a kind, the index of
        the weights they come from, a parameter), made on the first request only."""
        index = self._derived.get(key)
        if index is None:
            index = self._derived[key] = len(self.arrays)
            self.arrays.extend(make())
        return index


class PlanBuilder:
    """Collects the program of one batch regime of an :class:`InferencePlan` while each layer
    describes its step (each layer describes it once per regime, so ``plan_step`` must not
    change the layer; the regimes differ only in the algorithm a conv row takes).

    :meth:`describe` calls ``layer.plan_step(self)``; the step calls one of the op methods below
    with the layer's own parameters and geometry (the shapes come from the model). The builder
    applies the fusion rules, so a layer only says what it computes:

    - :meth:`activation` folds into the op before it (conv, dense, affine or a stand-alone
      activation) when that op has no activation yet, else it is a stand-alone in-place op;
    - :meth:`batch_norm` / :meth:`channel_affine` fold into a conv before them that has neither an
      affine nor an activation yet, else they are a stand-alone in-place per-channel affine;
    - :meth:`identity` adds nothing (the buffers are flat, so a reshape is free).

    Arrays are given as an :data:`ArraySource`. Op labels read ``"<index> <type>[+<type>...]"``.
    """

    def __init__(self, model: Sequential, regime: str, shared: SharedArrays) -> None:
        if regime not in REGIMES:
            raise ValueError(f"regime {regime!r} is not one of {REGIMES}")
        self.regime = regime
        self.dtype = shared.dtype
        act_max = max(math.prod(s) for s in (model.input_shape, *model.shapes))
        self._chunk = shared.chunk(act_max)
        self._shared = shared
        self._sizes = shared.sizes
        self._arrays = shared.arrays
        self._rows: list[np.ndarray] = []
        self._fparams: list[tuple[float, float]] = []  # (activation alpha, batchnorm eps) per op
        self._labels: list[str] = []
        # the layer being described
        self._index = -1
        self._layer: Layer | None = None
        self.in_shape: tuple[int, ...] = ()  # per-sample input shape of that layer
        self.out_shape: tuple[int, ...] = ()  # per-sample output shape of that layer
        self._steps = 0

    # --- driving ----------------------------------------------------------------------------

    def describe(
        self, index: int, layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> None:
        """Add layer ``index``'s step (its ``plan_step``) for the given per-sample shapes."""
        self._index, self._layer = index, layer
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self._steps = 0
        problem = layer.inherited_plan_step()
        if problem is not None:
            self.unsupported(problem)
        layer.plan_step(self)
        if self._steps == 0:
            self._fail("plan_step() added no step; call plan.identity() for a no-op layer")

    def program(self) -> Program:
        """This regime's program; :class:`UnsupportedModel` when no layer computes anything."""
        if not self._rows:
            raise UnsupportedModel("the model has no computing layer")
        fparams = np.asarray(self._fparams, np.float64).reshape(-1, 2)
        return Program(self.regime, np.stack(self._rows), fparams, self._labels)

    # --- the ops a plan step can add --------------------------------------------------------

    def unsupported(self, reason: str) -> NoReturn:
        """This layer has no step: the model will run inference layer by layer."""
        raise UnsupportedModel(f"{self._who()}: no inference-plan step: {reason}")

    def identity(self) -> None:
        """The layer computes nothing at inference (a reshape, dropout in eval mode)."""
        self._steps += 1
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            self._fail(f"identity step changes the size {self.in_shape} -> {self.out_shape}")
        if self._labels:
            self._labels[-1] += f"+{self._type_name()}"

    def conv(
        self,
        weight: ArraySource,
        bias: ArraySource | None,
        *,
        groups: int,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        dilation: tuple[int, int],
    ) -> None:
        """Grouped 2-D convolution, weight (F, C/groups, KH, KW), bias (F,) or None; padding
        (top, bottom, left, right). Output F x H' x W', H' = 1 + (H + top + bottom -
        dh*(KH-1) - 1) // sh."""
        c, h, w = self._image(self.in_shape, "input")
        f, oh, ow = self._image(self.out_shape, "output")
        self._check_window(kernel, stride, padding, dilation)
        if groups < 1 or c % groups or f % groups:
            self._fail(f"groups {groups} must divide the input channels {c} and filters {f}")
        r = self._new_row(ik.OP_CONV)
        r[ik.F_C], r[ik.F_H], r[ik.F_W] = c, h, w
        r[ik.F_F], r[ik.F_OH], r[ik.F_OW] = f, oh, ow
        r[ik.F_G] = groups
        r[ik.F_KH], r[ik.F_KW] = kernel
        r[ik.F_SH], r[ik.F_SW] = stride
        r[ik.F_PT], r[ik.F_PL] = padding[0], padding[2]
        r[ik.F_DH], r[ik.F_DW] = dilation
        r[ik.F_WI] = self._array("weight", weight, f * (c // groups) * kernel[0] * kernel[1])
        if bias is not None:
            r[ik.F_BI] = self._array("bias", bias, f)
        _conv_tiling(r, self._chunk, self.dtype.itemsize, self._sizes)
        if not (
            conv_algorithms.applies(kernel, stride, dilation, groups) and self._winograd(r, padding)
        ):
            self._small_work_path(r, weight)

    def _winograd(self, r: np.ndarray, padding: tuple[int, int, int, int]) -> bool:
        """Switch a 3x3 stride-1 conv row to Winograd when :mod:`core.conv_algorithms` picks it
        for this shape: the filter transform is packed now, next to a copy of the weights it was
        made from (the kernel redoes it when the live weights changed in place). Returns whether
        it did; a Winograd row takes no fused pooling and no blocked direct path."""
        c, h, w, f, oh, ow = (int(r[i]) for i in (ik.F_C, ik.F_H, ik.F_W, ik.F_F, ik.F_OH, ik.F_OW))
        top, left = padding[0], padding[2]
        m = conv_algorithms.tile_size(
            conv_algorithms.ConvShape(c, h, w, f, oh, ow, top, left, self.dtype.name)
        )
        if not m:
            return False
        a2 = (m + 2) ** 2
        weight = self._arrays[int(r[ik.F_WI])]

        def transform() -> list[np.ndarray]:
            u = np.empty(a2 * f * c, self.dtype)
            wino_k.winograd_filter(weight.reshape(f, c, 3, 3), m, u.reshape(a2, f, c))
            return [u, weight.copy()]

        block = conv_algorithms.block_rows(m, c, f, ow, self.dtype.itemsize)
        r[ik.F_WINO], r[ik.F_WB] = m, block
        r[ik.F_WU] = self._shared.derived(("winograd", int(r[ik.F_WI]), m), transform)
        tiles = block * -(-ow // m)  # V (a*a, C, tiles) in the cols scratch, M in res
        self._sizes["cols"] = max(self._sizes["cols"], a2 * c * tiles)
        self._sizes["res"] = max(self._sizes["res"], a2 * f * tiles)
        self._labels[-1] += f"(winograd{m})"
        return True

    def _small_work_path(self, r: np.ndarray, weight: ArraySource) -> None:
        """1x1 convs straight to GEMM; stride-1 convs the rule picks to the blocked direct kernel
        (its weights packed here, once, next to a copy of the weights they were packed from:
        the kernel repacks them when the live weights changed in place)."""
        groups, kh, kw = int(r[ik.F_G]), int(r[ik.F_KH]), int(r[ik.F_KW])
        c, f, oh, ow = int(r[ik.F_C]), int(r[ik.F_F]), int(r[ik.F_OH]), int(r[ik.F_OW])
        unit = r[ik.F_SH] == 1 and r[ik.F_SW] == 1
        unpadded = r[ik.F_PT] == 0 and r[ik.F_PL] == 0 and (oh, ow) == (r[ik.F_H], r[ik.F_W])
        k = c // groups * kh * kw
        if kh == kw == 1 and unit and unpadded:
            r[ik.F_GEMM1], r[ik.F_DIRECT] = 1, 0
            self._sizes["res"] = max(self._sizes["res"], f // groups * oh * ow)
            return
        rule = BLOCKED_CONV if self.regime == LATENCY else BLOCKED_CONV_BATCHED
        if not unit or self.dtype != np.float32 or not rule(k, f // groups, oh, ow):
            return
        live = self._arrays[int(r[ik.F_WI])].reshape(f, k)

        def pack() -> list[np.ndarray]:
            packed = np.zeros(direct.packed_size(f, groups, k), self.dtype)
            direct.pack_weights(live, groups, packed)
            return [packed, live.reshape(-1).copy()]  # and the weights it was packed from

        r[ik.F_PACK] = self._shared.derived(("packed", int(r[ik.F_WI]), groups), pack)
        r[ik.F_DIRECT] = 0
        owp = -(-ow // direct.TILE) * direct.TILE
        self._sizes["res"] = max(self._sizes["res"], direct.LANES * oh * owp)
        # the last tile's junk columns read up to TILE - 1 elements past the planes
        self._sizes["xp"] = max(self._sizes["xp"], c * int(r[ik.F_PLANE]) + direct.TILE)

    def dense(self, weight: ArraySource, bias: ArraySource | None) -> None:
        """y = x @ W + b on the flattened input: weight (I, O), bias (O,) or None."""
        in_size, out_size = math.prod(self.in_shape), math.prod(self.out_shape)
        r = self._new_row(ik.OP_DENSE)
        r[ik.F_WI] = self._array("weight", weight, in_size * out_size)
        # a single sample's split dense sums per-thread partial outputs in the res scratch
        self._sizes["res"] = max(self._sizes["res"], out_size)
        if bias is not None:
            r[ik.F_BI] = self._array("bias", bias, out_size)

    def max_pool(
        self, size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int, int, int]
    ) -> None:
        """Max over each window (padding never wins; an empty window gives 0)."""
        self._pool(ik.OP_MAXPOOL, size, stride, padding)

    def avg_pool(
        self, size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int, int, int]
    ) -> None:
        """Mean over the in-input pixels of each window (an empty window gives 0)."""
        self._pool(ik.OP_AVGPOOL, size, stride, padding)

    def global_avg_pool(self) -> None:
        """(C, H, W) -> (C,), the mean of each channel."""
        c, h, w = self._image(self.in_shape, "input")
        if self.out_shape != (c,):
            self._fail(f"global average pooling of {self.in_shape} must output ({c},)")
        r = self._new_row(ik.OP_GAP)
        r[ik.F_C], r[ik.F_H], r[ik.F_W] = c, h, w

    def batch_norm(
        self,
        gamma: ArraySource,
        beta: ArraySource,
        mean: ArraySource,
        var: ArraySource,
        *,
        eps: float,
    ) -> None:
        """Per-channel y = (x - mean) * gamma / sqrt(var + eps) + beta over channel axis 0 of
        the per-sample shape, the four (C,) arrays read live; fuses into a preceding conv."""
        if self.in_shape != self.out_shape:
            self._fail(
                f"a per-channel affine keeps the shape, got {self.in_shape} -> {self.out_shape}"
            )
        c = self.in_shape[0]
        last = self._rows[-1] if self._rows else None
        if (
            last is not None
            and last[ik.F_OP] == ik.OP_CONV
            and last[ik.F_BN] < 0
            and last[ik.F_ACT] == ik.ACT_NONE
            and last[ik.F_POOL] == ik.POOL_NONE
        ):
            r = last
            self._fuse()
        else:
            r = self._new_row(ik.OP_AFFINE)
            r[ik.F_C] = c
        # the kernels read gamma at F_BN and beta, mean, var right after it in the array list
        r[ik.F_BN] = self._array("gamma", gamma, c)
        self._array("beta", beta, c)
        self._array("mean", mean, c)
        self._array("var", var, c)
        self._fparams[-1] = (self._fparams[-1][0], float(eps))

    def channel_affine(self, scale: ArraySource, shift: ArraySource = 0.0) -> None:
        """Per-channel y = x * scale + shift (channel axis 0 of the per-sample shape); fuses into
        a preceding conv like :meth:`batch_norm` (which it is, with mean 0, var 1, eps 0: exact)."""
        self.batch_norm(scale, shift, 0.0, 1.0, eps=0.0)

    def activation(self, kind: int, alpha: float = 0.0) -> None:
        """Element-wise ``kind`` (an ``ACT_*`` code of :mod:`core.kernels.infer`; ``alpha`` is
        the leaky slope); folds into the op before it when that op has no activation yet."""
        if kind not in _ACTIVATION_CODES:
            self._fail(f"unknown activation code {kind}; known: {sorted(_ACTIVATION_CODES)}")
        if self.in_shape != self.out_shape:
            self._fail(f"an activation keeps the shape, got {self.in_shape} -> {self.out_shape}")
        last = self._rows[-1] if self._rows else None
        if (
            last is not None
            and last[ik.F_OP] in _TAKES_ACTIVATION
            and last[ik.F_ACT] == 0
            and last[ik.F_POOL] == ik.POOL_NONE  # an activation after a fused pool stays after it
        ):
            r = last
            self._fuse()
        else:
            r = self._new_row(ik.OP_ACT)
        r[ik.F_ACT] = kind
        self._fparams[-1] = (float(alpha), self._fparams[-1][1])

    # --- helpers ----------------------------------------------------------------------------

    def _pool(
        self,
        op: int,
        size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
    ) -> None:
        c, h, w = self._image(self.in_shape, "input")
        oc, oh, ow = self._image(self.out_shape, "output")
        if oc != c:
            self._fail(f"pooling keeps the channels, got {self.in_shape} -> {self.out_shape}")
        self._check_window(size, stride, padding, (1, 1))
        last = self._rows[-1] if self._rows else None
        if last is not None and _takes_pool(last, size, stride, padding):
            # conv -> [bn] -> [act] -> pool: pooled in the conv's output step
            self._fuse()
            last[ik.F_POOL] = ik.POOL_MAX if op == ik.OP_MAXPOOL else ik.POOL_AVG
            last[ik.F_PKH], last[ik.F_PKW] = size
            last[ik.F_PSH], last[ik.F_PSW] = stride
            last[ik.F_PPT], last[ik.F_PPL] = padding[0], padding[2]
            last[ik.F_POH], last[ik.F_POW] = oh, ow
            last[ik.F_OUT] = c * oh * ow
            return
        r = self._new_row(op)
        r[ik.F_C], r[ik.F_H], r[ik.F_W] = c, h, w
        r[ik.F_F], r[ik.F_OH], r[ik.F_OW] = oc, oh, ow
        r[ik.F_KH], r[ik.F_KW] = size
        r[ik.F_SH], r[ik.F_SW] = stride
        r[ik.F_PT], r[ik.F_PL] = padding[0], padding[2]

    def _check_window(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        dilation: tuple[int, int],
    ) -> None:
        """The output size must follow H' = 1 + (H + top + bottom - d*(K-1) - 1) // s: the
        kernels size their padded planes from it and do not check bounds."""
        if min(kernel + stride + dilation) < 1 or min(padding) < 0:
            self._fail(
                f"kernel {kernel}, stride {stride} and dilation {dilation} must be >= 1, "
                f"padding {padding} >= 0"
            )
        (_, h, w), (_, oh, ow) = self.in_shape, self.out_shape
        top, bottom, left, right = padding
        want = (
            1 + (h + top + bottom - dilation[0] * (kernel[0] - 1) - 1) // stride[0],
            1 + (w + left + right - dilation[1] * (kernel[1] - 1) - 1) // stride[1],
        )
        if want != (oh, ow):
            self._fail(
                f"kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation} give "
                f"an output of {want[0]}x{want[1]} from {self.in_shape}, not {oh}x{ow}"
            )

    def _image(self, shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
        if len(shape) != 3:
            self._fail(f"this op needs a per-sample (C, H, W) {what}, got {shape}")
        return shape[0], shape[1], shape[2]

    def _new_row(self, op: int) -> np.ndarray:
        self._steps += 1
        r = np.zeros(ik.NFIELDS, np.int64)
        r[ik.F_OP] = op
        r[ik.F_IN], r[ik.F_OUT] = math.prod(self.in_shape), math.prod(self.out_shape)
        r[ik.F_WI] = r[ik.F_BI] = r[ik.F_BN] = r[ik.F_PACK] = -1
        self._rows.append(r)
        self._fparams.append((0.0, 0.0))
        self._labels.append(f"{self._index} {self._type_name()}")
        return r

    def _fuse(self) -> None:
        self._steps += 1
        self._labels[-1] += f"+{self._type_name()}"

    def _array(self, name: str, source: ArraySource, size: int) -> int:
        """Index of ``source`` in the plan's array list (live view, or a constant copy)."""
        if isinstance(source, Parameter):
            source = Live(source, "value")
        if isinstance(source, Live):
            arr = getattr(source.owner, source.attribute)
            if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype:
                raise UnsupportedModel(
                    f"{self._who()}: array {name} is not a {self.dtype} array (it is read in "
                    "place, so it must have the model dtype)"
                )
            if not arr.flags.c_contiguous:
                raise UnsupportedModel(f"{self._who()}: array {name} is not contiguous")
            if arr.size != size:
                self._fail(f"array {name} has {arr.size} elements, the op needs {size}")
            return self._shared.live(source.owner, source.attribute, arr)
        if isinstance(source, np.ndarray):
            arr = np.array(source, dtype=self.dtype, order="C")
        else:
            arr = np.full(size, source, self.dtype)
        if arr.size != size:
            self._fail(f"array {name} has {arr.size} elements, the op needs {size}")
        self._arrays.append(arr.reshape(-1))
        return len(self._arrays) - 1

    def _type_name(self) -> str:
        return self._layer.type_name if self._layer is not None else "?"

    def _who(self) -> str:
        return f"layer {self._index} ({self._type_name()}, {type(self._layer).__name__})"

    def _fail(self, reason: str) -> NoReturn:
        raise PlanStepError(f"{self._who()}: plan_step(): {reason}")


def _macs(rows: list[np.ndarray]) -> int:
    """Multiply-adds per sample of the convs and dense layers of a program."""
    total = 0
    for r in rows:
        if r[ik.F_OP] == ik.OP_CONV:
            maps = int(r[ik.F_F] * r[ik.F_OH] * r[ik.F_OW])  # F_OUT is pooled when a pool fused
            total += maps * int(r[ik.F_C]) // int(r[ik.F_G]) * int(r[ik.F_KH] * r[ik.F_KW])
        elif r[ik.F_OP] == ik.OP_DENSE:
            total += int(r[ik.F_IN]) * int(r[ik.F_OUT])
    return total


def _takes_pool(
    r: np.ndarray,
    size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> bool:
    """Whether a conv row can pool in its output step (and make it so): it has no pool yet and
    its output step sees each channel's whole map at once, or it is a GEMM banded over output
    rows and the pool's windows do not straddle bands (row stride = window, no top padding:
    the band height is cut to a multiple of the window)."""
    if r[ik.F_OP] != ik.OP_CONV or r[ik.F_POOL] != ik.POOL_NONE or r[ik.F_WINO] > 0:
        return False  # the Winograd output step writes whole maps: the pool stays its own op
    if r[ik.F_PACK] >= 0 or r[ik.F_GEMM1] or r[ik.F_DIRECT] or r[ik.F_ROWS] >= r[ik.F_OH]:
        return True
    if stride[0] != size[0] or padding[0] != 0 or r[ik.F_ROWS] < size[0]:
        return False
    r[ik.F_ROWS] -= r[ik.F_ROWS] % size[0]  # fewer rows per band: the scratch still fits
    return True


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
