"""CNN layers. Each class owns everything about itself, side by side: ``forward``, ``backward``
(caching what backward needs and ADDING into its parameters' gradients), ``spatial`` (its summary
row's geometry) and ``plan_step`` (its op in the compiled inference plan, :mod:`core.inference`).
Adding a layer is one class plus its tests (see docs/layers.md).

Shapes are NCHW; ``build`` takes and returns per-sample shapes (no batch dim): (C, H, W) or (F,).
``shapes`` answers the same question (output shape, parameter shapes) from the options alone,
allocating nothing, and raises exactly the errors ``build`` would (:mod:`core.estimate`).
Conv/pool output size: ``H' = 1 + (H + pad_top + pad_bottom - dilation * (KH - 1) - 1) // stride``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

import numba
import numpy as np

from core import conv_algorithms, init, kernels
from core.errors import ShapeError, SpecError
from core.inference import Live, PlanBuilder
from core.kernels import activations as act_k
from core.kernels import batchnorm as bn_k
from core.kernels import blas, conv_wgrad
from core.kernels import conv as conv_k
from core.kernels import dense as dense_k
from core.kernels import infer as infer_k
from core.kernels import pool as pool_k
from core.kernels import winograd as wino_k
from core.kernels import winograd_wgrad as wino_wgrad_k
from core.parameter import Parameter

_REQUIRED: Any = object()
SERIAL_BELOW = 1 << 15  # input elements under which a serial_when_small method uses 1 thread

_Method = TypeVar("_Method", bound=Callable[..., Any])


def serial_when_small(method: _Method) -> _Method:
    """Decorate a layer method whose Numba kernels always take their parallel (``prange``)
    branch: for one sample, or fewer than ``SERIAL_BELOW`` elements, it runs them on the calling
    thread only.

    Waking the Numba thread pool costs more than such calls take, and a parallel region stalls
    whenever any pool thread is descheduled, which dominates batch-1 latency. Kernels that choose
    serial vs parallel from the work size themselves (conv, dense, maxpool, relu) and NumPy-only
    layers do not need it (it would only add ~2 us of get/set_num_threads per call).
    ``numba.set_num_threads`` is thread-local, so concurrent callers are unaffected.
    The method's first argument after ``self`` is its batch-first input (or output gradient).
    """

    @functools.wraps(method)
    def serial_if_small(self: Layer, arr: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        shape = getattr(arr, "shape", ())  # forward() may be given a list before _input()
        if (shape and shape[0] == 1) or getattr(arr, "size", 0) < SERIAL_BELOW:
            prev = numba.get_num_threads()
            if prev > 1:
                numba.set_num_threads(1)
                try:
                    return method(self, arr, *args, **kwargs)
                finally:
                    numba.set_num_threads(prev)
        return method(self, arr, *args, **kwargs)

    return cast(_Method, serial_if_small)


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Spatial:
    """Geometry of a sliding-window layer, for receptive-field maths.

    kernel (kh, kw), stride (sh, sw), padding (top, left), dilation (dh, dw).
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class LayerShapes:
    """What :meth:`Layer.build` would allocate for one per-sample input shape, known from the
    options alone: the per-sample output shape and the shape of every trainable (``parameters``)
    and non-trainable (``buffers``) array, by the names ``parameters()``/``buffers()`` use, and
    the window geometry ``spatial()`` would report once built (None: no window)."""

    out_shape: tuple[int, ...]
    parameters: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    buffers: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    spatial: Spatial | None = None

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.parameters.values())

    @property
    def buffer_count(self) -> int:
        return sum(math.prod(shape) for shape in self.buffers.values())


# ----------------------------------------------------------------------------- option parsing


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _pair(layer: str, name: str, v: Any, *, minimum: int) -> tuple[int, int]:
    """int or [a, b] -> (a, b), each >= minimum, else SpecError naming the option."""
    if _is_int(v):
        vals = (int(v), int(v))
    elif isinstance(v, list | tuple) and len(v) == 2 and all(_is_int(e) for e in v):
        vals = (int(v[0]), int(v[1]))
    else:
        raise SpecError(f"{layer}: option {name!r} must be an int or a pair of ints, got {v!r}")
    if min(vals) < minimum:
        raise SpecError(f"{layer}: option {name!r} must be >= {minimum}, got {v!r}")
    return vals


def _padding(layer: str, v: Any) -> str | tuple[int, int, int, int]:
    """'valid' | 'same' | int | [ph, pw] | [top, bottom, left, right] -> str or 4-tuple."""
    if isinstance(v, str):
        if v not in ("valid", "same"):
            raise SpecError(f"{layer}: option 'padding' must be 'valid', 'same' or ints, got {v!r}")
        return v
    if _is_int(v):
        p = int(v)
        vals = (p, p, p, p)
    elif isinstance(v, list | tuple) and len(v) == 2 and all(_is_int(e) for e in v):
        vals = (int(v[0]), int(v[0]), int(v[1]), int(v[1]))
    elif isinstance(v, list | tuple) and len(v) == 4 and all(_is_int(e) for e in v):
        vals = (int(v[0]), int(v[1]), int(v[2]), int(v[3]))
    else:
        raise SpecError(
            f"{layer}: option 'padding' must be 'valid', 'same', an int, [ph, pw] or "
            f"[top, bottom, left, right], got {v!r}"
        )
    if min(vals) < 0:
        raise SpecError(f"{layer}: option 'padding' must be >= 0, got {v!r}")
    return vals


def _resolve_padding(
    padding: str | tuple[int, int, int, int],
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right); 'same' gives OH = ceil(H / sh), extra pixel at bottom/right."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    assert not isinstance(padding, str)
    return padding


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(e) for e in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _fmt(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


# ----------------------------------------------------------------------------- base class


class Layer:
    """Base layer.

    Subclasses set ``type_name`` and ``_defaults`` (option -> default, ``_REQUIRED`` if none),
    parse options in ``_configure``, compute shapes (and reject inputs) in ``_shapes``, allocate
    parameters in ``_build`` (after calling ``_shapes``), and define ``forward``, ``backward``,
    ``training_workspace`` and ``plan_step`` next to each other. Methods whose kernels always run
    in parallel carry :func:`serial_when_small`.
    """

    type_name: ClassVar[str] = ""
    _defaults: ClassVar[dict[str, Any]] = {}
    #: forward returns a view of its input and backward a view of its gradient (no new memory).
    output_is_view: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self._defaults))
        if unknown:
            raise SpecError(
                f"{self.type_name}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join(sorted(self._defaults)) or 'none'}"
            )
        missing = [k for k, v in self._defaults.items() if v is _REQUIRED and k not in options]
        if missing:
            raise SpecError(
                f"{self.type_name}: missing required option(s) {', '.join(map(repr, missing))}"
            )
        self.options: dict[str, Any] = {
            k: _jsonable(options.get(k, v)) for k, v in self._defaults.items()
        }
        self.in_shape: tuple[int, ...] | None = None
        self.out_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype = np.dtype(np.float32)
        self._configure()

    # -- subclass hooks
    def _configure(self) -> None:
        """Validate and parse ``self.options`` (raise SpecError naming the option)."""

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        """Output and array shapes for per-sample ``in_shape`` from the options alone (allocate
        nothing); raise ShapeError/SpecError for an input the layer cannot take."""
        return LayerShapes(in_shape)

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Allocate what ``_shapes`` describes; return the output shape."""
        return self._shapes(in_shape).out_shape

    # -- public API
    def build(
        self,
        in_shape: tuple[int, ...],
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ) -> tuple[int, ...]:
        """Allocate parameters for per-sample input ``in_shape``; return per-sample output shape."""
        dt = np.dtype(dtype)
        if dt not in _FLOAT_DTYPES:
            raise SpecError(f"{self.type_name}: dtype must be float32 or float64, got {dt}")
        shape = self._checked_in_shape(in_shape)
        self.dtype = dt
        out = self._build(shape, rng)
        self.in_shape, self.out_shape = shape, tuple(out)
        return self.out_shape

    def shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        """What :meth:`build` would allocate for per-sample ``in_shape``, without allocating it
        (nor changing the layer); raises the errors ``build`` raises for that input.

        Raises:
            ShapeError: an input the layer cannot take.
            SpecError: the class overrides ``_build`` but not ``_shapes``, so its shapes are
                unknown without building it.
        """
        mro = type(self).__mro__
        build_owner = next(c for c in mro if "_build" in vars(c))
        shapes_owner = next(c for c in mro if "_shapes" in vars(c))
        if build_owner is not Layer and not issubclass(shapes_owner, build_owner):
            raise SpecError(
                f"{self.type_name}: {type(self).__name__} overrides _build() but not _shapes(); "
                "its shapes are unknown without building it"
            )
        return self._shapes(self._checked_in_shape(in_shape))

    def training_workspace(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
    ) -> int:
        """Bytes per sample that one training step holds for this layer besides its input, its
        output and their gradients: what ``forward`` caches for ``backward`` and the scratch its
        kernels allocate (an upper bound; :mod:`core.estimate` sums it). None by default."""
        return 0

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def plan_step(self, plan: PlanBuilder) -> None:
        """Describe the eval-mode forward to the compiled inference plan by calling one
        :class:`core.inference.PlanBuilder` op (after :meth:`build`; shapes come from the model).

        This default has no step: a model holding the layer runs inference layer by layer.
        """
        plan.unsupported(f"{type(self).__name__} defines no plan_step()")

    @classmethod
    def inherited_plan_step(cls) -> str | None:
        """Why this class's plan step cannot be trusted, or None when it can.

        A step inherited from above the class that defines forward() describes the parent's
        computation, not this one (the base class's own step says "no step", which is honest).
        """
        mro = cls.__mro__
        step_owner = next(c for c in mro if "plan_step" in vars(c))
        forward_owner = next(c for c in mro if "forward" in vars(c))
        if step_owner is Layer or issubclass(step_owner, forward_owner):
            return None
        return (
            f"{cls.__name__} overrides forward() (in {forward_owner.__name__}) but inherits "
            f"plan_step() from {step_owner.__name__}, which may compute something else; "
            "define plan_step() next to forward()"
        )

    def parameters(self) -> dict[str, Parameter]:
        return {}

    def buffers(self) -> dict[str, np.ndarray]:
        return {}

    def config(self) -> dict[str, Any]:
        return {"type": self.type_name, **self.options}

    def spatial(self) -> Spatial | None:
        return None

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # -- helpers
    def _input(self, x: np.ndarray) -> np.ndarray:
        """Check x is (N, *in_shape) and return it C-contiguous in the layer dtype."""
        if self.in_shape is None:
            raise RuntimeError(f"{self.type_name}: build() must be called before forward()")
        x = np.asarray(x)
        if x.ndim != len(self.in_shape) + 1 or tuple(x.shape[1:]) != self.in_shape:
            raise ShapeError(
                f"{self.type_name}: expected input of shape (N, "
                f"{', '.join(map(str, self.in_shape))}), got {_fmt(tuple(x.shape))}"
            )
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _grad_input(self, dout: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
        if shape is None:
            raise RuntimeError(f"{self.type_name}: backward() called before forward()")
        dout = np.asarray(dout)
        if tuple(dout.shape) != shape:
            raise ShapeError(
                f"{self.type_name}: expected output gradient of shape {_fmt(shape)}, "
                f"got {_fmt(tuple(dout.shape))}"
            )
        return np.ascontiguousarray(dout, dtype=self.dtype)

    def _checked_in_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(s) for s in in_shape)
        if any(s <= 0 for s in shape):
            raise ShapeError(f"{self.type_name}: input shape {_fmt(shape)} has a non-positive size")
        return shape

    def _require_image(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(in_shape) != 3:
            raise ShapeError(
                f"{self.type_name}: expected a per-sample (C, H, W) input, got {_fmt(in_shape)} "
                f"(rank {len(in_shape)}, needs rank 3)"
            )
        return in_shape[0], in_shape[1], in_shape[2]


def _init_weight(
    layer: str,
    scheme: str,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    dtype: np.dtype,
) -> np.ndarray:
    if scheme == "he":
        return init.he_normal(rng, shape, fan_in, dtype)
    return init.xavier_uniform(rng, shape, fan_in, fan_out, dtype)


def _check_init(layer: str, v: Any) -> str:
    if v not in ("he", "xavier"):
        raise SpecError(f"{layer}: option 'init' must be 'he' or 'xavier', got {v!r}")
    return str(v)


# ----------------------------------------------------------------------------- conv


class Conv2D(Layer):
    """2-D convolution (cross-correlation), grouped, strided, dilated, padded.

    Input (N, C, H, W) -> output (N, F, H', W'), weight (F, C/groups, KH, KW), bias (F,);
    H' = 1 + (H + top + bottom - dh*(KH-1) - 1) // sh. groups == C == F is depthwise.
    Computed per sample as im2col + one BLAS GEMM per group inside a Numba loop over the batch;
    backward = the two transposed GEMMs + col2im (see :mod:`core.kernels.conv`). 3x3 stride-1
    ungrouped convs may run as Winograd F(2x2|4x4, 3x3) instead (forward, backward-data and, where
    backward-data does, the weight gradient), as :mod:`core.conv_algorithms` decides per shape.
    """

    type_name = "conv2d"
    _defaults: ClassVar[dict[str, Any]] = {
        "filters": _REQUIRED,
        "kernel_size": _REQUIRED,
        "stride": 1,
        "padding": "valid",
        "dilation": 1,
        "groups": 1,
        "use_bias": True,
        "init": "he",
    }

    def _configure(self) -> None:
        o, t = self.options, self.type_name
        if not _is_int(o["filters"]) or o["filters"] < 1:
            raise SpecError(f"{t}: option 'filters' must be a positive int, got {o['filters']!r}")
        self.filters = int(o["filters"])
        self.kernel = _pair(t, "kernel_size", o["kernel_size"], minimum=1)
        self.stride = _pair(t, "stride", o["stride"], minimum=1)
        self.dilation = _pair(t, "dilation", o["dilation"], minimum=1)
        self.padding_opt = _padding(t, o["padding"])
        if not _is_int(o["groups"]) or o["groups"] < 1:
            raise SpecError(f"{t}: option 'groups' must be a positive int, got {o['groups']!r}")
        self.groups = int(o["groups"])
        if self.filters % self.groups:
            raise SpecError(
                f"{t}: option 'filters' ({self.filters}) must be divisible by 'groups' "
                f"({self.groups})"
            )
        if not isinstance(o["use_bias"], bool):
            raise SpecError(f"{t}: option 'use_bias' must be true or false, got {o['use_bias']!r}")
        self.use_bias = o["use_bias"]
        self.init = _check_init(t, o["init"])
        self.pads: tuple[int, int, int, int] | None = None
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        self._x: np.ndarray | None = None
        self._out_shape: tuple[int, ...] | None = None

    def _pads(self, in_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        return _resolve_padding(
            self.padding_opt, (in_shape[1], in_shape[2]), self.kernel, self.stride, self.dilation
        )

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        c, h, w = self._require_image(in_shape)
        t = self.type_name
        if c % self.groups:
            raise ShapeError(
                f"{t}: input channels {c} of input {_fmt(in_shape)} not divisible by groups "
                f"{self.groups}"
            )
        pads = self._pads(in_shape)
        (kh, kw), (dh, dw), (sh, sw) = self.kernel, self.dilation, self.stride
        ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        ph, pw = h + pads[0] + pads[1], w + pads[2] + pads[3]
        if ekh > ph or ekw > pw:
            raise ShapeError(
                f"{t}: kernel {kh}x{kw} (dilated extent {ekh}x{ekw}) is larger than the padded "
                f"input {ph}x{pw} (input {_fmt(in_shape)}, padding {list(pads)})"
            )
        oh, ow = 1 + (ph - ekh) // sh, 1 + (pw - ekw) // sw
        params: dict[str, tuple[int, ...]] = {"weight": (self.filters, c // self.groups, kh, kw)}
        if self.use_bias:
            params["bias"] = (self.filters,)
        return LayerShapes((self.filters, oh, ow), params, spatial=self._spatial(pads))

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        shapes = self._shapes(in_shape)
        self.pads = self._pads(in_shape)
        wshape = shapes.parameters["weight"]
        f, cg, kh, kw = wshape
        fan_in, fan_out = cg * kh * kw, f // self.groups * kh * kw
        self.weight = Parameter(
            _init_weight(self.type_name, self.init, rng, wshape, fan_in, fan_out, self.dtype)
        )
        self.bias = Parameter(np.zeros(self.filters, self.dtype)) if self.use_bias else None
        self._zero_bias = np.zeros(self.filters, self.dtype)
        return shapes.out_shape

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        assert self.weight is not None and self.pads is not None and self.out_shape is not None
        kernels.single_threaded_blas()
        out = np.empty((x.shape[0], *self.out_shape), self.dtype)
        b = self.bias.value if self.bias is not None else self._zero_bias
        m = self._winograd_tile(x.shape[1:], backward=False)
        with blas.numpy_blas(1) as fptr:  # NumPy's newer OpenBLAS: 20-35% faster conv GEMMs
            if m:  # filter transform per call: the weights change every training step
                c = x.shape[1]
                u = np.empty(((m + 2) ** 2, self.filters, c), self.dtype)
                wino_k.winograd_filter(self.weight.value, m, u)
                block = conv_algorithms.block_rows(m, c, self.filters, out.shape[3], x.itemsize)
                pt, pl, threads = self.pads[0], self.pads[2], numba.get_num_threads()
                wino_k.winograd_forward(x, u, b, m, pt, pl, block, threads, out, fptr)
            else:
                conv_k.conv2d_forward(
                    x, self.weight.value, b, *self._geometry(), self._block(x), out, fptr
                )
        self._x, self._out_shape = x, out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._grad_input(dout, self._out_shape)
        assert self.weight is not None and self._x is not None
        x = self._x
        f, k = self.weight.value.shape[0], self.weight.value[0].size
        partial = np.empty((numba.get_num_threads(), f, k + 1), self.dtype)
        db = self.bias.grad if self.bias is not None else np.zeros(f, self.dtype)
        dx = np.empty_like(x)
        m = self._winograd_tile(x.shape[1:], backward=True)
        if m:
            self._winograd_backward(x, dout, m, dx, db, partial)
            return dx
        with blas.numpy_blas(1) as fptr:
            conv_k.conv2d_backward(
                x,
                self.weight.value,
                dout,
                *self._geometry(),
                self._block(x),
                dx,
                self.weight.grad,
                db,
                partial,
                fptr,
            )
        return dx

    def training_workspace(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
    ) -> int:
        """The kernels' scratch (:mod:`core.kernels.conv`), per sample:
        ``2*C*S + (2*K + F/G) * R*Wg`` values, K = C/G*KH*KW. Stride 1 copies the input into a
        zero-padded grid of width Wg = OW + dw*(KW-1) and length S = (OH + dh*(KH-1))*Wg +
        dw*(KW-1) and accumulates its gradient in another (other strides: S = 0, Wg = OW); the
        im2col columns and their gradient are K x R*Wg, the GEMM result / output gradient grid
        F/G x R*Wg, for R output rows at a time: all OH, except that at stride 1 a map of at
        least _GEMM_COLUMNS pixels (one sample per block) is lowered in bands whose columns fit
        the kernels' cache budget. Kernels hold this per thread, not per sample, so counting it
        per sample bounds it from above. The cached input is the previous layer's output. Not
        counted: backward's per-thread weight-gradient partial sums (threads x parameters),
        which depend on the machine, not the spec."""
        c = in_shape[0]
        f, oh, ow = out_shape
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        k = c // self.groups * kh * kw
        rows = oh
        if self.stride == (1, 1):
            wg = ow + dw * (kw - 1)
            plane = (oh + dh * (kh - 1)) * wg + dw * (kw - 1)
            if oh * ow >= self._GEMM_COLUMNS:  # block == 1: the kernels' _bands() applies
                rows = min(oh, max(1, conv_k._COLS_BUDGET // (k * wg * itemsize)))
        else:
            wg, plane = ow, 0
        return itemsize * (2 * c * plane + (2 * k + f // self.groups) * rows * wg)

    def plan_step(self, plan: PlanBuilder) -> None:
        """One conv op; a following batchnorm and activation fold into its epilogue."""
        assert self.weight is not None and self.pads is not None
        plan.conv(
            self.weight,
            self.bias,
            groups=self.groups,
            kernel=self.kernel,
            stride=self.stride,
            padding=self.pads,
            dilation=self.dilation,
        )

    _GEMM_COLUMNS: ClassVar[int] = 2048

    def _block(self, x: np.ndarray) -> int:
        """Samples per GEMM: enough for ~_GEMM_COLUMNS columns, balanced over the threads."""
        assert self.out_shape is not None
        n, threads = x.shape[0], numba.get_num_threads()
        per_thread = -(-n // threads)
        cap = max(1, -(-self._GEMM_COLUMNS // (self.out_shape[1] * self.out_shape[2])))
        return -(-per_thread // -(-per_thread // cap))

    def _winograd_tile(self, in_shape: tuple[int, ...], *, backward: bool) -> int:
        """Winograd tile size (2 or 4) for the forward conv or backward-data, 0 for im2col
        (:mod:`core.conv_algorithms`). Backward-data is the stride-1 conv of the output gradient
        with the flipped, channel-swapped filter and padding (2 - top, 2 - left)."""
        assert self.pads is not None and self.out_shape is not None
        if not conv_algorithms.applies(self.kernel, self.stride, self.dilation, self.groups):
            return 0
        (c, h, w), (f, oh, ow), pads = in_shape, self.out_shape, self.pads
        if not backward:
            shape = self._conv_shape(in_shape)
        elif max(pads) <= 2:
            top, left = 2 - pads[0], 2 - pads[2]
            shape = conv_algorithms.ConvShape(f, oh, ow, c, h, w, top, left, self.dtype.name)
        else:
            return 0
        return conv_algorithms.tile_size(shape)

    def _conv_shape(self, in_shape: tuple[int, ...]) -> conv_algorithms.ConvShape:
        """The forward convolution as :mod:`core.conv_algorithms` keys its choices."""
        assert self.pads is not None and self.out_shape is not None
        (c, h, w), (f, oh, ow), pads = in_shape, self.out_shape, self.pads
        return conv_algorithms.ConvShape(c, h, w, f, oh, ow, pads[0], pads[2], self.dtype.name)

    def _winograd_backward(
        self,
        x: np.ndarray,
        dout: np.ndarray,
        m: int,
        dx: np.ndarray,
        db: np.ndarray,
        partial: np.ndarray,
    ) -> None:
        """dx by Winograd (the transposed filter transformed per step); weight and bias gradient
        by Winograd (:mod:`core.kernels.winograd_wgrad`) or im2col + GEMM
        (:mod:`core.kernels.conv_wgrad`), as :func:`core.conv_algorithms.weight_grad_tile`
        decides for this shape."""
        assert self.weight is not None and self.pads is not None
        w, c = self.weight.value, x.shape[1]
        u = np.empty(((m + 2) ** 2, c, self.filters), self.dtype)
        block = conv_algorithms.block_rows(m, self.filters, c, x.shape[3], x.itemsize)
        with blas.numpy_blas(1) as fptr:
            wino_k.winograd_filter_transposed(w, m, u)
            zero = np.zeros(c, self.dtype)
            pt, pl = 2 - self.pads[0], 2 - self.pads[2]
            threads = numba.get_num_threads()
            wino_k.winograd_forward(dout, u, zero, m, pt, pl, block, threads, dx, fptr)
            mw = conv_algorithms.weight_grad_tile(self._conv_shape(x.shape[1:]))
            if mw:
                wblock = conv_algorithms.block_rows(mw, c, self.filters, dout.shape[3], x.itemsize)
                top, left = self.pads[0], self.pads[2]
                wino_wgrad_k.winograd_weight_grad(
                    x, dout, mw, top, left, wblock, threads, self.weight.grad, db, fptr
                )
            else:
                conv_wgrad.conv2d_weight_grad(
                    x, w, dout, *self._geometry(), self._block(x), self.weight.grad, db, partial,
                    fptr,
                )  # fmt: skip

    def _geometry(self) -> tuple[int, int, int, int, int, int]:
        """(sh, sw, pad_top, pad_left, dh, dw) as the kernels take them."""
        assert self.pads is not None
        return (*self.stride, self.pads[0], self.pads[2], *self.dilation)

    def parameters(self) -> dict[str, Parameter]:
        params = {"weight": self.weight} if self.weight is not None else {}
        if self.bias is not None:
            params["bias"] = self.bias
        return params

    def _spatial(self, pads: tuple[int, int, int, int]) -> Spatial:
        return Spatial(self.kernel, self.stride, (pads[0], pads[2]), self.dilation)

    def spatial(self) -> Spatial:
        if self.pads is not None:
            return self._spatial(self.pads)
        if self.padding_opt == "same":
            top = (self.kernel[0] - 1) * self.dilation[0] // 2
            left = (self.kernel[1] - 1) * self.dilation[1] // 2
        else:
            pads = _resolve_padding(self.padding_opt, (1, 1), self.kernel, self.stride, (1, 1))
            top, left = pads[0], pads[2]
        return Spatial(self.kernel, self.stride, (top, left), self.dilation)


# ----------------------------------------------------------------------------- pooling


class _Pool2D(Layer):
    _defaults: ClassVar[dict[str, Any]] = {"size": 2, "stride": None, "padding": 0}

    def _configure(self) -> None:
        o, t = self.options, self.type_name
        self.size = _pair(t, "size", o["size"], minimum=1)
        self.stride = (
            self.size if o["stride"] is None else _pair(t, "stride", o["stride"], minimum=1)
        )
        self.padding_opt = _padding(t, o["padding"])
        self.pads: tuple[int, int, int, int] | None = None
        self._x_shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] | None = None
        self._argmax = np.empty(0, np.int64)

    def _pads(self, in_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        return _resolve_padding(
            self.padding_opt, (in_shape[1], in_shape[2]), self.size, self.stride, (1, 1)
        )

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        c, h, w = self._require_image(in_shape)
        t = self.type_name
        pads = self._pads(in_shape)
        kh, kw = self.size
        if max(pads[0], pads[1]) >= kh or max(pads[2], pads[3]) >= kw:
            raise ShapeError(f"{t}: padding {list(pads)} must be smaller than the window {kh}x{kw}")
        ph, pw = h + pads[0] + pads[1], w + pads[2] + pads[3]
        if kh > ph or kw > pw:
            raise ShapeError(
                f"{t}: window {kh}x{kw} is larger than the padded input {ph}x{pw} "
                f"(input {_fmt(in_shape)}, padding {list(pads)})"
            )
        out_shape = (c, 1 + (ph - kh) // self.stride[0], 1 + (pw - kw) // self.stride[1])
        return LayerShapes(out_shape, spatial=self._spatial(pads))

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        out_shape = self._shapes(in_shape).out_shape
        self.pads = self._pads(in_shape)
        return out_shape

    def _geometry(self) -> tuple[int, int, int, int, int, int]:
        assert self.pads is not None
        return (*self.size, *self.stride, self.pads[0], self.pads[2])

    def _spatial(self, pads: tuple[int, int, int, int]) -> Spatial:
        return Spatial(self.size, self.stride, (pads[0], pads[2]), (1, 1))

    def spatial(self) -> Spatial:
        if self.pads is not None:
            return self._spatial(self.pads)
        if self.padding_opt == "same":
            top, left = (self.size[0] - 1) // 2, (self.size[1] - 1) // 2
        else:
            pads = _resolve_padding(self.padding_opt, (1, 1), self.size, self.stride, (1, 1))
            top, left = pads[0], pads[2]
        return Spatial(self.size, self.stride, (top, left), (1, 1))


class MaxPool2D(_Pool2D):
    """Max pooling: (N, C, H, W) -> (N, C, H', W'), H' = 1 + (H + top + bottom - size) // stride.

    Keeps the argmax of each window; backward routes each gradient to it.
    """

    type_name = "maxpool2d"

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        assert self.out_shape is not None
        shape = (x.shape[0], *self.out_shape)
        out = np.empty(shape, self.dtype)
        self._argmax = np.empty(shape, np.int64)
        pool_k.maxpool_forward(x, *self._geometry(), out, self._argmax)
        self._x_shape, self._out_shape = x.shape, shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._grad_input(dout, self._out_shape)
        assert self._x_shape is not None
        dx = np.empty(self._x_shape, self.dtype)
        pool_k.maxpool_backward(dout, self._argmax, dx)
        return dx

    def training_workspace(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
    ) -> int:
        """The int64 argmax of every output value, kept for backward."""
        return 8 * math.prod(out_shape)

    def plan_step(self, plan: PlanBuilder) -> None:
        assert self.pads is not None
        plan.max_pool(self.size, self.stride, self.pads)


class AvgPool2D(_Pool2D):
    """Average pooling: (N, C, H, W) -> (N, C, H', W'), H' = 1 + (H + top + bottom - size) // sh.

    Each window's mean is over its in-input pixels (padding is not counted).
    """

    type_name = "avgpool2d"

    @serial_when_small
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        assert self.out_shape is not None
        out = np.empty((x.shape[0], *self.out_shape), self.dtype)
        pool_k.avgpool_forward(x, *self._geometry(), out)
        self._x_shape, self._out_shape = x.shape, out.shape
        return out

    @serial_when_small
    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._grad_input(dout, self._out_shape)
        assert self._x_shape is not None
        dx = np.empty(self._x_shape, self.dtype)
        pool_k.avgpool_backward(dout, *self._geometry(), dx)
        return dx

    def plan_step(self, plan: PlanBuilder) -> None:
        assert self.pads is not None
        plan.avg_pool(self.size, self.stride, self.pads)


class GlobalAvgPool2D(Layer):
    """Global average pooling: (N, C, H, W) -> (N, C), mean over H*W."""

    type_name = "global_avgpool2d"

    def _configure(self) -> None:
        self._x_shape: tuple[int, ...] | None = None

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        c, h, w = self._require_image(in_shape)
        return LayerShapes((c,), spatial=Spatial((h, w), (h, w), (0, 0), (1, 1)))

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        self._x_shape = x.shape
        return x.mean(axis=(2, 3), dtype=self.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._x_shape is None:
            raise RuntimeError(f"{self.type_name}: backward() called before forward()")
        n, c, h, w = self._x_shape
        dout = self._grad_input(dout, (n, c))
        dx = np.empty(self._x_shape, self.dtype)
        dx[...] = (dout / (h * w))[:, :, None, None]
        return dx

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.global_avg_pool()

    def spatial(self) -> Spatial | None:
        return None if self.in_shape is None else self._shapes(self.in_shape).spatial


class Flatten(Layer):
    """(N, *shape) -> (N, prod(shape)), a view (no copy)."""

    type_name = "flatten"
    output_is_view = True

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        return LayerShapes((math.prod(in_shape),))

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.in_shape is not None
        dout = np.ascontiguousarray(dout, dtype=self.dtype)
        return dout.reshape(dout.shape[0], *self.in_shape)

    def plan_step(self, plan: PlanBuilder) -> None:
        """Nothing to compute: the plan's activation buffers are flat already."""
        plan.identity()


# ----------------------------------------------------------------------------- dense


class Dense(Layer):
    """Fully connected: (N, I) -> (N, units); y = x @ W + b, W (I, units), b (units,).

    A non-flat per-sample input (C, H, W) is flattened (I = C*H*W) and the gradient reshaped back.
    """

    type_name = "dense"
    _defaults: ClassVar[dict[str, Any]] = {"units": _REQUIRED, "use_bias": True, "init": "he"}

    def _configure(self) -> None:
        o, t = self.options, self.type_name
        if not _is_int(o["units"]) or o["units"] < 1:
            raise SpecError(f"{t}: option 'units' must be a positive int, got {o['units']!r}")
        self.units = int(o["units"])
        if not isinstance(o["use_bias"], bool):
            raise SpecError(f"{t}: option 'use_bias' must be true or false, got {o['use_bias']!r}")
        self.use_bias = o["use_bias"]
        self.init = _check_init(t, o["init"])
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        self._x: np.ndarray | None = None

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        params: dict[str, tuple[int, ...]] = {"weight": (math.prod(in_shape), self.units)}
        if self.use_bias:
            params["bias"] = (self.units,)
        return LayerShapes((self.units,), params)

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        shapes = self._shapes(in_shape)
        fan_in = shapes.parameters["weight"][0]
        self.weight = Parameter(
            _init_weight(
                self.type_name,
                self.init,
                rng,
                (fan_in, self.units),
                fan_in,
                self.units,
                self.dtype,
            )
        )
        self.bias = Parameter(np.zeros(self.units, self.dtype)) if self.use_bias else None
        self._zero_bias = np.zeros(self.units, self.dtype)
        return shapes.out_shape

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        assert self.weight is not None
        kernels.single_threaded_blas()
        x2 = x.reshape(x.shape[0], -1)
        out = np.empty((x.shape[0], self.units), self.dtype)
        b = self.bias.value if self.bias is not None else self._zero_bias
        with blas.numpy_blas(1) as fptr:
            dense_k.dense_forward(x2, self.weight.value, b, out, fptr)
        self._x = x2
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.weight is not None and self.in_shape is not None
        x = self._x
        dout = self._grad_input(dout, None if x is None else (x.shape[0], self.units))
        assert x is not None
        dx = np.empty(x.shape, self.dtype)
        db = self.bias.grad if self.bias is not None else np.zeros(self.units, self.dtype)
        with blas.numpy_blas(1) as fptr:
            dense_k.dense_backward(dout, x, self.weight.value, dx, self.weight.grad, db, fptr)
        return dx.reshape(x.shape[0], *self.in_shape)

    def plan_step(self, plan: PlanBuilder) -> None:
        """One GEMM op; a following activation folds into it."""
        assert self.weight is not None
        plan.dense(self.weight, self.bias)

    def parameters(self) -> dict[str, Parameter]:
        params = {"weight": self.weight} if self.weight is not None else {}
        if self.bias is not None:
            params["bias"] = self.bias
        return params


# ----------------------------------------------------------------------------- activations


class _Elementwise(Layer):
    """Shape-preserving element-wise layer: ``_fwd``/``_bwd`` get C-contiguous batch-first
    arrays of one shape and run a flat kernel over them (``.reshape(-1)`` is a view)."""

    def _configure(self) -> None:
        self._saved: np.ndarray | None = None

    def _fwd(self, x: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _bwd(self, dout: np.ndarray, saved: np.ndarray, dx: np.ndarray) -> None:
        raise NotImplementedError

    _save_output: ClassVar[bool] = False

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        out = np.empty_like(x)
        self._fwd(x, out)
        self._saved = out if self._save_output else x
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        saved = self._saved
        dout = self._grad_input(dout, None if saved is None else saved.shape)
        assert saved is not None
        dx = np.empty_like(dout)
        self._bwd(dout, saved, dx)
        return dx


class ReLU(_Elementwise):
    """y = max(x, 0); dy/dx = 1 where x > 0 else 0."""

    type_name = "relu"

    # no serial_when_small: the ReLU kernels run serially below PARALLEL_MIN by themselves
    def _fwd(self, x: np.ndarray, out: np.ndarray) -> None:
        act_k.relu_forward(x.reshape(-1), out.reshape(-1))

    def _bwd(self, dout: np.ndarray, saved: np.ndarray, dx: np.ndarray) -> None:
        act_k.relu_backward(dout.reshape(-1), saved.reshape(-1), dx.reshape(-1))

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.activation(infer_k.ACT_RELU)


class LeakyReLU(_Elementwise):
    """y = x if x > 0 else alpha * x (option alpha, default 0.01)."""

    type_name = "leaky_relu"
    _defaults: ClassVar[dict[str, Any]] = {"alpha": 0.01}

    def _configure(self) -> None:
        super()._configure()
        a = self.options["alpha"]
        if not isinstance(a, int | float) or isinstance(a, bool) or not math.isfinite(a) or a < 0:
            raise SpecError(
                f"{self.type_name}: option 'alpha' must be a finite float >= 0, got {a!r}"
            )
        self.alpha = float(a)

    @serial_when_small
    def _fwd(self, x: np.ndarray, out: np.ndarray) -> None:
        act_k.leaky_relu_forward(x.reshape(-1), self.alpha, out.reshape(-1))

    @serial_when_small
    def _bwd(self, dout: np.ndarray, saved: np.ndarray, dx: np.ndarray) -> None:
        act_k.leaky_relu_backward(dout.reshape(-1), saved.reshape(-1), self.alpha, dx.reshape(-1))

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.activation(infer_k.ACT_LEAKY, alpha=self.alpha)


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)."""

    type_name = "sigmoid"
    _save_output = True

    @serial_when_small
    def _fwd(self, x: np.ndarray, out: np.ndarray) -> None:
        act_k.sigmoid_forward(x.reshape(-1), out.reshape(-1))

    @serial_when_small
    def _bwd(self, dout: np.ndarray, saved: np.ndarray, dx: np.ndarray) -> None:
        act_k.sigmoid_backward(dout.reshape(-1), saved.reshape(-1), dx.reshape(-1))

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.activation(infer_k.ACT_SIGMOID)


class Tanh(_Elementwise):
    """y = tanh(x); dy/dx = 1 - y^2."""

    type_name = "tanh"
    _save_output = True

    @serial_when_small
    def _fwd(self, x: np.ndarray, out: np.ndarray) -> None:
        act_k.tanh_forward(x.reshape(-1), out.reshape(-1))

    @serial_when_small
    def _bwd(self, dout: np.ndarray, saved: np.ndarray, dx: np.ndarray) -> None:
        act_k.tanh_backward(dout.reshape(-1), saved.reshape(-1), dx.reshape(-1))

    def plan_step(self, plan: PlanBuilder) -> None:
        plan.activation(infer_k.ACT_TANH)


# ----------------------------------------------------------------------------- regularisation


class Dropout(Layer):
    """Inverted dropout: training keeps each value with probability 1 - rate, scaled by
    1 / (1 - rate); identity when ``training=False``. Its generator is seeded from the build rng."""

    type_name = "dropout"
    _defaults: ClassVar[dict[str, Any]] = {"rate": 0.5}

    def _configure(self) -> None:
        r = self.options["rate"]
        if not isinstance(r, int | float) or isinstance(r, bool) or not 0 <= r < 1:
            raise SpecError(f"{self.type_name}: option 'rate' must be in [0, 1), got {r!r}")
        self.rate = float(r)
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self._rng = np.random.default_rng(0)

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        return LayerShapes(in_shape)  # its generator (seeded in _build) is not an array

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self._rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        return self._shapes(in_shape).out_shape

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        self._shape = x.shape
        if not training or self.rate == 0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = self._grad_input(dout, self._shape)
        return dout if self._mask is None else dout * self._mask

    def training_workspace(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
    ) -> int:
        """The kept mask (layer dtype), and while it is drawn the float32 uniforms and the
        boolean keep array: ``(itemsize + 4 + 1)`` bytes per value."""
        return (itemsize + 4 + 1) * math.prod(in_shape)

    def plan_step(self, plan: PlanBuilder) -> None:
        """Identity at inference."""
        plan.identity()


class BatchNorm2D(Layer):
    """Batch normalisation per channel of (N, C, H, W); weight (gamma) (C,), bias (beta) (C,).

    Train: batch mean/var (biased) normalise; running stats updated as
    running = (1 - momentum) * running + momentum * batch (running_var uses the unbiased batch
    variance, as PyTorch). Eval: running stats normalise. buffers(): running_mean, running_var.
    """

    type_name = "batchnorm2d"
    _defaults: ClassVar[dict[str, Any]] = {"momentum": 0.1, "eps": 1e-5}

    def _configure(self) -> None:
        o, t = self.options, self.type_name
        m, e = o["momentum"], o["eps"]
        if not isinstance(m, int | float) or isinstance(m, bool) or not 0 <= m <= 1:
            raise SpecError(f"{t}: option 'momentum' must be in [0, 1], got {m!r}")
        if not isinstance(e, int | float) or isinstance(e, bool) or not e > 0:
            raise SpecError(f"{t}: option 'eps' must be > 0, got {e!r}")
        self.momentum, self.eps = float(m), float(e)
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        self._cache: tuple[Any, ...] | None = None

    def _shapes(self, in_shape: tuple[int, ...]) -> LayerShapes:
        c, _, _ = self._require_image(in_shape)
        return LayerShapes(
            in_shape,
            {"weight": (c,), "bias": (c,)},
            {"running_mean": (c,), "running_var": (c,)},
        )

    def _build(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        shapes = self._shapes(in_shape)
        c = in_shape[0]
        self.weight = Parameter(np.ones(c, self.dtype))
        self.bias = Parameter(np.zeros(c, self.dtype))
        self.running_mean = np.zeros(c, self.dtype)
        self.running_var = np.ones(c, self.dtype)
        return shapes.out_shape

    @serial_when_small
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x = self._input(x)
        assert self.weight is not None and self.bias is not None
        c = x.shape[1]
        if training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            if m < 2:
                raise ShapeError(
                    f"{self.type_name}: training needs more than one value per channel, got input "
                    f"{_fmt(tuple(x.shape))}"
                )
            mean = np.empty(c, np.float64)
            var = np.empty(c, np.float64)
            bn_k.bn_stats(x, mean, var)
            mom = self.momentum
            self.running_mean *= 1 - mom
            self.running_mean += (mom * mean).astype(self.dtype)
            self.running_var *= 1 - mom
            self.running_var += (mom * var * m / (m - 1)).astype(self.dtype)
        else:
            mean = self.running_mean.astype(np.float64)
            var = self.running_var.astype(np.float64)
        invstd = 1.0 / np.sqrt(var + self.eps)
        scale = (self.weight.value * invstd).astype(self.dtype)
        shift = (self.bias.value - mean * scale).astype(self.dtype)
        out = np.empty_like(x)
        bn_k.bn_apply(x, scale, shift, out)
        self._cache = (x, mean.astype(self.dtype), invstd.astype(self.dtype), training)
        return out

    @serial_when_small
    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"{self.type_name}: backward() called before forward()")
        x, mean, invstd, training = self._cache
        dout = self._grad_input(dout, x.shape)
        assert self.weight is not None and self.bias is not None
        c = x.shape[1]
        sum_dy = np.empty(c, self.dtype)
        sum_dy_xhat = np.empty(c, self.dtype)
        bn_k.bn_backward_reduce(dout, x, mean, invstd, sum_dy, sum_dy_xhat)
        self.weight.grad += sum_dy_xhat
        self.bias.grad += sum_dy
        dx = np.empty_like(x)
        if training:
            bn_k.bn_backward_apply(
                dout, x, mean, invstd, self.weight.value, sum_dy, sum_dy_xhat, dx
            )
        else:
            zero = np.zeros(c, self.dtype)
            bn_k.bn_apply(dout, (self.weight.value * invstd).astype(self.dtype), zero, dx)
        return dx

    def plan_step(self, plan: PlanBuilder) -> None:
        """Eval mode: a per-channel affine from the live running statistics; folds into a conv
        right before it."""
        assert self.weight is not None and self.bias is not None
        plan.batch_norm(
            self.weight,
            self.bias,
            Live(self, "running_mean"),
            Live(self, "running_var"),
            eps=self.eps,
        )

    def parameters(self) -> dict[str, Parameter]:
        if self.weight is None or self.bias is None:
            return {}
        return {"weight": self.weight, "bias": self.bias}

    def buffers(self) -> dict[str, np.ndarray]:
        if self.weight is None:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var}


# ----------------------------------------------------------------------------- registry

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        GlobalAvgPool2D,
        Flatten,
        Dense,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        Dropout,
        BatchNorm2D,
    )
}


def layer_from_config(cfg: dict[str, Any]) -> Layer:
    """{"type": name, **options} -> unbuilt Layer; unknown type/option -> SpecError naming it."""
    if not isinstance(cfg, dict):
        raise SpecError(f"layer config must be an object with a 'type', got {cfg!r}")
    if "type" not in cfg:
        raise SpecError(
            f"layer config {cfg!r} has no 'type'; known types: {', '.join(LAYER_TYPES)}"
        )
    options = dict(cfg)
    name = options.pop("type")
    cls = LAYER_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SpecError(f"unknown layer type {name!r}; known types: {', '.join(LAYER_TYPES)}")
    return cls(**options)


__all__ = [
    "LAYER_TYPES",
    "AvgPool2D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "LayerShapes",
    "LeakyReLU",
    "MaxPool2D",
    "Parameter",
    "ReLU",
    "Sigmoid",
    "Spatial",
    "Tanh",
    "layer_from_config",
    "serial_when_small",
]
