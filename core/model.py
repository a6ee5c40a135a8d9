"""``Sequential``: a stack of layers built from a JSON-able architecture spec.

Shapes: input (N, C, H, W) -> logits (N, K). Every layer's ``build`` is given the per-sample
output shape of the previous one; a mismatch raises :class:`SpecError` naming the layer index,
its type and the shapes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ArtifactError, ShapeError, SpecError
from core.metrics import Metrics, classification_metrics

if TYPE_CHECKING:
    from core.inference import InferencePlan
    from core.layers import Layer
    from core.parameter import Parameter
    from core.summary import Summary

MAX_LAYERS = 1000
MAX_INPUT_SIDE = 4096
MAX_INPUT_CHANNELS = 64
DEFAULT_BATCH = 256


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, max-shifted for stability."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(v, int | np.integer) and v > 0 for v in shape):
        raise SpecError(f"input_shape must be three positive integers (C, H, W), got {shape}")
    c, h, w = (int(v) for v in shape)
    if c > MAX_INPUT_CHANNELS or h > MAX_INPUT_SIDE or w > MAX_INPUT_SIDE:
        raise SpecError(
            f"input_shape {shape} exceeds the limits C ≤ {MAX_INPUT_CHANNELS}, "
            f"H, W ≤ {MAX_INPUT_SIDE}"
        )
    return c, h, w


def layers_from_spec(architecture: Sequence[Any]) -> list[Layer]:
    """Unbuilt layers of ``[{"type": "conv2d", ...}, ...]`` (options checked, nothing allocated).

    Raises:
        SpecError: not a list of objects, too many layers, unknown layer type or option (naming
            the layer index and type).
    """
    from core.layers import layer_from_config

    if isinstance(architecture, str | bytes) or not isinstance(architecture, Sequence):
        raise SpecError(
            f"architecture must be a list of layer objects, got {type(architecture).__name__}"
        )
    if len(architecture) > MAX_LAYERS:
        raise SpecError(f"architecture has {len(architecture)} layers, limit {MAX_LAYERS}")
    layers = []
    for index, cfg in enumerate(architecture):
        if not isinstance(cfg, dict):
            raise SpecError(
                f"layer {index}: expected an object like {{'type': 'conv2d', ...}}, "
                f"got {type(cfg).__name__}"
            )
        try:
            layers.append(layer_from_config(dict(cfg)))
        except (SpecError, ShapeError, TypeError, ValueError) as exc:
            raise SpecError(f"layer {index} ({cfg.get('type', '?')}): {exc}") from exc
    return layers


ShapeStep = Callable[["Layer", tuple[int, ...], np.dtype], tuple[int, ...]]


def propagate_shapes(
    layers: Sequence[Layer],
    input_shape: Sequence[int],
    dtype: type | np.dtype,
    step: ShapeStep,
) -> tuple[tuple[int, int, int], np.dtype, list[tuple[int, ...]]]:
    """Check a layer stack: each layer is given the previous per-sample output shape through
    ``step(layer, in_shape, dtype) -> out_shape``, which builds it (:class:`Sequential`) or only
    computes its shapes (:func:`core.estimate.estimate`), so both report the same errors.

    Returns:
        The checked (C, H, W) input shape, the dtype and every layer's output shape.

    Raises:
        SpecError: bad input shape or dtype, empty or too long stack, a layer that cannot take
            its input (naming the layer index, type and shapes), no (K,) output. (K = 1
            is allowed: a one-target regression model; a classifier's K >= 2 follows from its
            data set's classes.)
    """
    checked_input = _check_input_shape(input_shape)
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise SpecError(f"dtype must be float32 or float64, got {dt}")
    if not layers:
        raise SpecError("architecture is empty: at least one layer is required")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"architecture has {len(layers)} layers, limit {MAX_LAYERS}")
    shape: tuple[int, ...] = checked_input
    shapes: list[tuple[int, ...]] = []
    for index, layer in enumerate(layers):
        try:
            out = tuple(int(v) for v in step(layer, shape, dt))
        except (ShapeError, SpecError) as exc:
            raise SpecError(
                f"layer {index} ({layer.type_name}): cannot take input shape {shape}: {exc}"
            ) from exc
        if any(v <= 0 for v in out):
            raise SpecError(
                f"layer {index} ({layer.type_name}): input shape {shape} gives an empty "
                f"output shape {out}"
            )
        shapes.append(out)
        shape = out
    if len(shape) != 1:
        raise SpecError(
            f"layer {len(layers) - 1} ({layers[-1].type_name}): the last layer "
            f"must output class scores (K,), got {shape}; end with flatten + dense"
        )
    return checked_input, dt, shapes


class Sequential:
    """Layers applied in order; ``forward``/``backward`` run through all of them.

    Build with :meth:`from_spec` (the usual way) or ``Sequential(layers, input_shape)`` from
    layer objects that are not built yet.

    Inference (:meth:`logits`, :meth:`predict_proba`, :meth:`predict`, :meth:`evaluate`) runs
    through a compiled :class:`core.inference.InferencePlan` (whole network in one call, fused
    bias/BatchNorm/activation, reused buffers) when ``use_inference_plan`` is true and every layer
    is supported; otherwise, and for :meth:`forward`, layer by layer.
    """

    use_inference_plan: bool = True

    def __init__(
        self,
        layers: Iterable[Layer],
        input_shape: Sequence[int],
        *,
        seed: int = 0,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        self.layers: list[Layer] = list(layers)
        #: Indices of layers whose parameters are not trained (see :meth:`freeze`).
        self.frozen: frozenset[int] = frozenset()
        self._plan: InferencePlan | None = None
        self._plan_unsupported = False
        self._plan_lock = threading.Lock()
        rng = np.random.default_rng(seed)

        def build(layer: Layer, shape: tuple[int, ...], dt: np.dtype) -> tuple[int, ...]:
            return layer.build(shape, rng, dtype=dt)

        # shapes: the per-sample output shape of each layer
        self.input_shape, self.dtype, self.shapes = propagate_shapes(
            self.layers, input_shape, dtype, build
        )

    @classmethod
    def from_spec(
        cls,
        architecture: Sequence[Any],
        input_shape: Sequence[int],
        *,
        seed: int = 0,
        dtype: type | np.dtype = np.float32,
    ) -> Sequential:
        """Build from ``[{"type": "conv2d", ...}, ...]`` for per-sample input (C, H, W).

        Raises:
            SpecError: not a list of objects, unknown layer type or option, incompatible
                shapes (naming the layer index, type and shapes).
        """
        return cls(layers_from_spec(architecture), input_shape, seed=seed, dtype=dtype)

    # --- introspection ---------------------------------------------------------------------

    @property
    def architecture(self) -> list[dict[str, Any]]:
        """JSON-able layer configs (round-trips through :meth:`from_spec`)."""
        return [layer.config() for layer in self.layers]

    @property
    def num_classes(self) -> int:
        return self.shapes[-1][0]

    def parameters(self) -> list[Parameter]:
        """Trainable parameters in a fixed order (layer order, then the layer's dict order)."""
        return [p for layer in self.layers for p in layer.parameters().values()]

    def trainable_parameters(self) -> list[Parameter]:
        """:meth:`parameters` of the layers that are not frozen (what an optimizer updates)."""
        return [
            p
            for index, layer in enumerate(self.layers)
            if index not in self.frozen
            for p in layer.parameters().values()
        ]

    def freeze(self, indices: Iterable[int]) -> None:
        """Stop training the layers ``indices`` (replacing any earlier choice).

        A frozen layer's parameters are left out of :meth:`trainable_parameters` and keep a
        zero gradient; it runs in inference mode even in training (a frozen batchnorm
        normalises with its running statistics and does not update them), so a training run
        leaves every array of it bit-identical. Gradients still flow through it to earlier
        layers.

        Raises:
            SpecError: an index that is not a layer with parameters.
        """
        chosen = frozenset(int(i) for i in indices)
        for index in sorted(chosen):
            if not 0 <= index < len(self.layers) or not self.layers[index].parameters():
                raise SpecError(f"layer {index}: not a layer with parameters, cannot be frozen")
        self.frozen = chosen

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Weights and buffers as ``{"<layer index>.<name>": array}`` (copies)."""
        out: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            for name, param in layer.parameters().items():
                out[f"{index}.{name}"] = param.value.copy()
            for name, buf in layer.buffers().items():
                out[f"{index}.{name}"] = np.array(buf, copy=True)
        return out

    def load_named_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays into the model in place (keys and shapes must match exactly).

        Raises:
            ArtifactError: missing or unexpected names, shape mismatch, non-finite values.
        """
        targets: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            for name, param in layer.parameters().items():
                targets[f"{index}.{name}"] = param.value
            for name, buf in layer.buffers().items():
                targets[f"{index}.{name}"] = buf
        missing = sorted(set(targets) - set(arrays))
        unexpected = sorted(set(arrays) - set(targets))
        if missing or unexpected:
            raise ArtifactError(
                f"weights do not match the architecture: missing {missing}, unexpected {unexpected}"
            )
        for key, target in targets.items():
            source = np.asarray(arrays[key])
            if source.shape != target.shape:
                raise ArtifactError(
                    f"weights[{key!r}] has shape {source.shape}, the architecture needs "
                    f"{target.shape}"
                )
            if source.dtype.kind not in "fiu":
                raise ArtifactError(f"weights[{key!r}] has dtype {source.dtype}, expected float")
            if not np.all(np.isfinite(source)):
                raise ArtifactError(f"weights[{key!r}] contains NaN or infinity")
        for key, target in targets.items():
            target[...] = arrays[key]

    def summary(self) -> Summary:
        """Per-layer output shape, parameters and receptive field (``print(model.summary())``)."""
        from core.summary import summarize

        return summarize(self)

    # --- computation -----------------------------------------------------------------------

    def _check_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"input has shape {tuple(x.shape)}, the model expects (N, "
                f"{', '.join(map(str, self.input_shape))})"
            )
        return np.ascontiguousarray(x, dtype=self.dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(N, C, H, W) -> logits (N, K); ``training`` enables dropout / batch statistics."""
        out = self._check_batch(x)
        for index, layer in enumerate(self.layers):
            out = layer.forward(out, training=training and index not in self.frozen)
        return out

    def backward(self, dlogits: np.ndarray, *, input_grad: bool = True) -> np.ndarray:
        """Back-propagate d cost / d logits (N, K); adds into the trainable parameters' grads
        (frozen layers' grads stay 0) and returns d input.

        With ``input_grad=False`` (training, which needs no d input) it stops once no trainable
        layer is left below: after a frozen feature extractor only the head is run backward.
        The gradient returned is then the one at the input of the lowest layer it ran.
        """
        grad = np.ascontiguousarray(dlogits, dtype=self.dtype)
        lowest = 0
        if not input_grad:
            trainable = [
                i
                for i, layer in enumerate(self.layers)
                if i not in self.frozen and layer.parameters()
            ]
            lowest = min(trainable, default=len(self.layers))
        for index in range(len(self.layers) - 1, lowest - 1, -1):
            layer = self.layers[index]
            grad = layer.backward(grad)
            if index in self.frozen:
                for param in layer.parameters().values():
                    param.zero_grad()  # the kernels add into it; a frozen one stays 0
        return grad

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.zero_grad()

    def inference_plan(self) -> InferencePlan | None:
        """The compiled inference plan (built on first use, rebuilt when a parameter array was
        replaced), or None when disabled or a layer is not supported by the engine."""
        if not self.use_inference_plan or self._plan_unsupported:
            return None
        plan = self._plan
        if plan is not None and plan.is_current():
            return plan
        from core.inference import InferencePlan, UnsupportedModel

        with self._plan_lock:
            if self._plan is None or not self._plan.is_current():
                try:
                    self._plan = InferencePlan.compile(self)
                except UnsupportedModel:
                    self._plan_unsupported = True
                    return None
            return self._plan

    def logits(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Inference-mode logits (N, K); the layer path computes them in batches of
        ``batch_size`` (the compiled plan needs no batching: its memory does not grow with N)."""
        plan = self.inference_plan()
        if plan is not None:
            return plan.logits(x)
        return self._layer_logits(x, batch_size)

    def _layer_logits(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            self._check_batch(x)  # raises the shape error
        if x.shape[0] == 0:
            return np.zeros((0, self.num_classes), dtype=self.dtype)
        parts = [
            self.forward(x[i : i + batch_size], training=False)
            for i in range(0, x.shape[0], batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def predict_proba(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Class probabilities (N, K) float32 of normalised inputs (N, C, H, W)."""
        plan = self.inference_plan()
        if plan is not None:
            return plan.predict_proba(x)
        return softmax(self._layer_logits(x, batch_size).astype(np.float64)).astype(np.float32)

    def predict(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Most likely class (N,) int64."""
        return self.logits(x, batch_size).argmax(axis=1).astype(np.int64)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = DEFAULT_BATCH) -> Metrics:
        """Accuracy, mean cross-entropy loss, per-class precision/recall, confusion matrix."""
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != np.asarray(x).shape[0]:
            raise ShapeError(f"labels have shape {y.shape}, expected ({np.asarray(x).shape[0]},)")
        logits = self.logits(x, batch_size).astype(np.float64)
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise ShapeError(f"labels must lie in 0..{self.num_classes - 1}")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_probs[np.arange(y.size), y].mean()) if y.size else 0.0
        return classification_metrics(y, logits.argmax(axis=1), self.num_classes, loss=loss)

    def __repr__(self) -> str:
        types = ", ".join(layer.type_name for layer in self.layers)
        return f"Sequential(input_shape={self.input_shape}, layers=[{types}])"
