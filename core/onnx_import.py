"""ONNX graph -> the library's architecture + weights + input spec, then a new model version.

Only plain CNN chains are taken: one float input (N, C, H, W) with static C, H, W (any batch
dimension), each node feeding the next, and these ops (default domain, opset 9 or later):

    Conv (pads, strides, dilations, group; auto_pad VALID / SAME_UPPER / SAME_LOWER become
      explicit pads) -> conv2d
    Relu / LeakyRelu / Sigmoid / Tanh -> relu / leaky_relu / sigmoid / tanh
    MaxPool, AveragePool (ceil_mode only where it rounds the same; AveragePool must not count
      padding) -> maxpool2d / avgpool2d;  GlobalAveragePool -> global_avgpool2d
    BatchNormalization -> batchnorm2d (kept as a layer, not folded: fine-tunable as trained)
    Gemm (alpha, beta, transB) and MatMul + Add -> dense;  Flatten(axis 1) and a Reshape to
      2-D (N, features) -> flatten;  Dropout -> dropout;  Identity -> nothing
    Softmax as the last node -> dropped (the server applies softmax itself)
    Sub / Mul / Div by per-channel constants before the first layer -> the normalisation

Every node is checked in one pass before anything is built; what cannot be taken is refused
with :class:`ImportRefused`, listing each node's name, op and why (:class:`Refusal`).

Input spec: C, H, W from the graph input, dtype float32. A graph exported by
:mod:`core.onnx_export` carries its pixel range, resize mode, normalisation and class names in
``metadata_props``; any other graph takes them from :class:`ImportOptions` (defaults: pixels
0..1, the graph's own normalisation nodes or mean 0 / std 1, resize ``stretch``, classes
"0".."K-1").
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from core.artifacts import InputSpec, ModelMeta, save_artifact
from core.datasets import Normalisation
from core.errors import ArtifactError, CnnError, ShapeError, SpecError
from core.images import ResizeMode
from core.layers import layer_from_config
from core.model import Sequential
from core.onnx_export import META_CLASS_NAMES, META_INPUT, META_PREPROCESSING
from core.repository import ModelRepository, check_name

MIN_OPSET = 9
SUPPORTED_OPS = (
    "Conv",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Gemm",
    "MatMul",
    "Add",
    "Flatten",
    "Reshape",
    "Dropout",
    "Softmax",
    "Identity",
    "Constant",
    "Sub",
    "Mul",
    "Div",
)
#: What a refusal of an unknown op lists (Constant is plumbing; Sub/Mul/Div only normalise).
_LISTED_OPS = [op for op in SUPPORTED_OPS if op != "Constant"]
GRAPH = "(graph)"
#: pixel range of a graph that does not say (no metadata, no option): images scaled to 0..1
DEFAULT_PIXEL_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Refusal:
    """Why one node (or the graph as a whole: node ``(graph)``) cannot be imported."""

    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        if self.node == GRAPH:
            return f"graph: {self.reason}"
        return f"node {self.node!r} ({self.op}): {self.reason}"


class ImportRefused(CnnError, ValueError):
    """The graph uses something the library cannot express; nothing was written."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = list(refusals)
        super().__init__("ONNX import refused: " + "; ".join(map(str, self.refusals)))


class ImportOptionsError(CnnError, ValueError):
    """The caller's options do not fit the graph (class count, normalisation given twice)."""


@dataclass(frozen=True)
class ImportOptions:
    """What a graph does not say about its input (see the module docstring for defaults)."""

    class_names: list[str] | None = None
    pixel_range: tuple[float, float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    resize: ResizeMode | None = None


@dataclass
class ImportedGraph:
    """The library's view of an ONNX graph: what :func:`core.model.Sequential.from_spec` and
    ``load_named_arrays`` take, plus the input spec and the normalisation."""

    architecture: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
    input_shape: tuple[int, int, int]
    #: (mean, std) from normalisation nodes at the start of the graph, None when it has none
    normalisation: tuple[list[float], list[float]] | None
    #: metadata_props of the file (our export's keys among them)
    metadata: dict[str, str] = field(default_factory=dict)
    #: the producer's name and version, as the file says
    producer: str = ""


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _f32(value: Any) -> float:
    """A float attribute (stored as float32) at the 7 significant digits float32 holds, so
    0.1 and 1e-5 come back as written rather than as 0.10000000149 and 9.99999975e-06."""
    return float(f"{float(value):.7g}")


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _same_pads(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    upper: bool,
) -> list[int]:
    """ONNX SAME_UPPER / SAME_LOWER pads as the library's [top, bottom, left, right]."""
    out: list[int] = []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        out += [small, big] if upper else [big, small]
    return out


class _Reader:
    """One pass over the nodes: builds the layer list and collects every refusal."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = _opset(model)
        self.refusals: list[Refusal] = []
        self.constants: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer
        }
        self.architecture: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.layer_nodes: list[str] = []
        self.shape: tuple[int, ...] = ()
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.current = ""
        self.logits = ""
        self.consumers: Counter[str] = Counter()
        self.graph_outputs: set[str] = set()
        self.shape_in: tuple[int, int, int] = (0, 0, 0)
        self.previous_op = ""

    # -- helpers
    def refuse(self, node: onnx.NodeProto | None, reason: str) -> None:
        if node is None:
            self.refusals.append(Refusal(GRAPH, "", reason))
        else:
            self.refusals.append(Refusal(node.name or f"<{node.output[0]}>", node.op_type, reason))

    def const(self, node: onnx.NodeProto, position: int, what: str) -> np.ndarray | None:
        """The constant at input ``position`` (None when absent or, refused, not constant)."""
        if position >= len(node.input) or not node.input[position]:
            return None
        name = node.input[position]
        if name not in self.constants:
            self.refuse(node, f"{what} ({name!r}) is not a constant: weights must be initializers")
            return None
        return self.constants[name]

    def add_layer(self, node: onnx.NodeProto, cfg: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Check ``cfg`` against the current shape and the weights' shapes, then append it."""
        try:
            layer = layer_from_config(dict(cfg))
            shapes = layer.shapes(self.shape)
        except (SpecError, ShapeError) as exc:
            self.refuse(node, f"as {cfg['type']} on input {self.shape}: {exc}")
            return
        expected = {**shapes.parameters, **shapes.buffers}
        for key, value in arrays.items():
            if tuple(value.shape) != tuple(expected[key]):
                self.refuse(
                    node,
                    f"{key} has shape {tuple(value.shape)}, the {cfg['type']} layer on input "
                    f"{self.shape} needs {tuple(expected[key])}",
                )
                return
        index = len(self.architecture)
        self.architecture.append(cfg)
        self.layer_nodes.append(node.name)
        for key, value in arrays.items():
            self.arrays[f"{index}.{key}"] = np.asarray(value, np.float32)
        self.shape = shapes.out_shape

    def unused_extra_outputs(self, node: onnx.NodeProto, what: str) -> None:
        for extra in node.output[1:]:
            if extra and (self.consumers[extra] or extra in self.graph_outputs):
                self.refuse(node, f"its {what} output {extra!r} is used; only the first is taken")

    # -- the pass
    def read(self) -> ImportedGraph | None:
        graph = self.graph
        if self.opset < MIN_OPSET:
            self.refuse(None, f"default-domain opset {self.opset} is older than {MIN_OPSET}")
            return None
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = _attrs(node).get("value")
                if isinstance(value, onnx.TensorProto):
                    self.constants[node.output[0]] = numpy_helper.to_array(value)
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            self.refuse(None, f"needs exactly one (non-constant) input, has {len(names)}: {names}")
            return None
        if not self._input(inputs[0]):
            return None
        self.graph_outputs = {o.name for o in graph.output}
        for node in graph.node:
            for name in node.input:
                if name and name not in self.constants:
                    self.consumers[name] += 1
        chain = [n for n in graph.node if not (n.op_type == "Constant" and not n.domain)]
        for position, node in enumerate(chain):
            self._node(node, last=position == len(chain) - 1)
        if not self.architecture and not self.refusals:
            self.refuse(None, "has no layer")
        self._outputs()
        if self.refusals:
            return None
        normalisation = None
        if self.mean is not None or self.std is not None:
            c = self.shape_in[0]
            mean = np.zeros(c) if self.mean is None else self.mean
            std = np.ones(c) if self.std is None else self.std
            normalisation = ([float(v) for v in mean], [float(v) for v in std])
        return ImportedGraph(
            self.architecture,
            self.arrays,
            self.shape_in,
            normalisation,
            {p.key: p.value for p in self.model.metadata_props},
            f"{self.model.producer_name} {self.model.producer_version}".strip(),
        )

    def _input(self, value: onnx.ValueInfoProto) -> bool:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.elem_type != onnx.TensorProto.FLOAT:
            self.refuse(None, f"input {value.name!r} must be a float32 tensor")
            return False
        dims = list(tensor.shape.dim)
        if len(dims) != 4:
            self.refuse(None, f"input {value.name!r} must be (N, C, H, W), has rank {len(dims)}")
            return False
        chw = []
        for axis, dim in zip("CHW", dims[1:], strict=True):
            if not dim.HasField("dim_value") or dim.dim_value < 1:
                self.refuse(
                    None,
                    f"input {value.name!r} dimension {axis} is dynamic "
                    f"({dim.dim_param or 'unknown'}); only the batch dimension may be",
                )
                return False
            chw.append(int(dim.dim_value))
        self.shape_in = (chw[0], chw[1], chw[2])
        self.shape = self.shape_in
        self.current = self.logits = value.name
        return True

    def _outputs(self) -> None:
        allowed = {self.current, self.logits}
        for name in self.graph_outputs:
            if name not in allowed:
                self.refuse(
                    None,
                    f"output {name!r} is not the end of the chain (its logits or their softmax)",
                )

    def _node(self, node: onnx.NodeProto, last: bool) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            self.refuse(node, f"op of domain {node.domain!r} is not supported")
        elif op not in SUPPORTED_OPS:
            self.refuse(node, f"unsupported op; supported: {', '.join(_LISTED_OPS)}")
        flowing = [n for n in node.input if n and n not in self.constants]
        if not flowing:
            self.refuse(node, "computes from constants only: fold it into an initializer")
            return
        if node.input[0] != self.current:  # other non-constant inputs: refused as weights
            self.refuse(
                node,
                f"takes {node.input[0]!r} but the chain's tensor is {self.current!r}: the graph "
                "must be a single chain of nodes, each taking the previous one's output",
            )
        elif self.consumers[self.current] > 1:
            self.refuse(
                node,
                f"its input {self.current!r} also feeds {self.consumers[self.current] - 1} other "
                "node(s): the graph must be a single chain",
            )
        self.current = node.output[0]
        previous, self.previous_op = self.previous_op, op
        if op != "Softmax":
            self.logits = self.current
        if node.domain in ("", "ai.onnx") and op in SUPPORTED_OPS:
            handler: Callable[[onnx.NodeProto, dict[str, Any]], None] = getattr(self, f"_{op}")
            if op == "Softmax" and not last:
                self.refuse(node, "Softmax is taken only as the last node (it is dropped)")
                return
            if op == "Add" and previous != "MatMul":
                self.refuse(node, "Add is taken only right after MatMul, as its bias")
                return
            handler(node, _attrs(node))

    # -- ops
    def _Identity(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        pass

    def _Softmax(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        axis = int(a.get("axis", 1 if self.opset < 13 else -1))
        if len(self.shape) != 1 or axis not in (1, -1):
            self.refuse(node, f"Softmax over axis {axis} of input {self.shape}: only over classes")

    def _normalising(self, node: onnx.NodeProto) -> np.ndarray | None:
        """A per-channel constant of a Sub/Mul/Div before the first layer, as (C,)."""
        if self.architecture:
            self.refuse(node, f"{node.op_type} is taken only as normalisation before any layer")
            return None
        value = self.constants.get(node.input[1]) if len(node.input) == 2 else None
        if value is None or node.input[0] in self.constants:
            self.refuse(node, "normalisation needs (input, per-channel constant)")
            return None
        c = self.shape_in[0]
        flat = np.asarray(value, np.float64)
        # broadcast against (N, C, H, W): a scalar, (C, 1, 1) or (1, C, 1, 1); a (C,) constant
        # would line up with W, not C
        if flat.size == 1 and flat.ndim <= 4:
            return np.full(c, float(flat.reshape(-1)[0]))
        if flat.shape in ((c, 1, 1), (1, c, 1, 1)):
            return flat.reshape(c)
        self.refuse(node, f"constant of shape {flat.shape} is not per-channel (1, {c}, 1, 1)")
        return None

    def _Sub(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        value = self._normalising(node)
        if value is not None:
            if self.mean is not None or self.std is not None:
                self.refuse(node, "normalisation must be one Sub, then one Mul or Div")
            self.mean = value

    def _Div(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        value = self._normalising(node)
        if value is not None:
            if self.std is not None or not np.all(np.isfinite(value)) or np.any(value <= 0):
                self.refuse(node, "normalisation divides once, by finite values > 0")
            self.std = value

    def _Mul(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        value = self._normalising(node)
        if value is not None:
            if self.std is not None or not np.all(np.isfinite(value)) or np.any(value <= 0):
                self.refuse(node, "normalisation multiplies once, by finite values > 0")
                return
            # (x - m) * s = (x - m) / (1 / s); Normalisation.apply rounds 1/std back to s
            self.std = 1.0 / value

    def _Conv(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        w = self.const(node, 1, "weight W")
        b = self.const(node, 2, "bias B")
        if w is None:
            return
        if w.ndim != 4:
            self.refuse(node, f"weight W of rank {w.ndim}: only 2-D convolutions (rank 4)")
            return
        kernel = (int(w.shape[2]), int(w.shape[3]))
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != kernel:
            self.refuse(node, f"kernel_shape {a['kernel_shape']} differs from W's {kernel}")
            return
        stride = tuple(a.get("strides", (1, 1)))
        dilation = tuple(a.get("dilations", (1, 1)))
        pads = self._pads(node, a, kernel, stride, dilation)
        if pads is None:
            return
        cfg = {
            "type": "conv2d",
            "filters": int(w.shape[0]),
            "kernel_size": list(kernel),
            "stride": list(stride),
            "padding": pads,
            "dilation": list(dilation),
            "groups": int(a.get("group", 1)),
            "use_bias": b is not None,
        }
        arrays = {"weight": w} if b is None else {"weight": w, "bias": b}
        self.add_layer(node, cfg, arrays)

    def _pads(
        self,
        node: onnx.NodeProto,
        a: dict[str, Any],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> list[int] | None:
        """Explicit [top, bottom, left, right] from ``pads`` or ``auto_pad``."""
        if len(kernel) != 2 or len(stride) != 2 or len(dilation) != 2 or len(self.shape) != 3:
            self.refuse(node, f"needs a (C, H, W) input and 2-D windows, input is {self.shape}")
            return None
        auto = _text(a.get("auto_pad", "NOTSET"))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return _same_pads(
                (self.shape[1], self.shape[2]),
                (int(kernel[0]), int(kernel[1])),
                (int(stride[0]), int(stride[1])),
                (int(dilation[0]), int(dilation[1])),
                upper=auto == "SAME_UPPER",
            )
        if auto == "VALID":
            return [0, 0, 0, 0]
        if auto != "NOTSET":
            self.refuse(node, f"auto_pad={auto} is not supported")
            return None
        p = [int(v) for v in a.get("pads", (0, 0, 0, 0))]
        if len(p) != 4:
            self.refuse(node, f"pads {p} are not 2-D ([top, left, bottom, right])")
            return None
        return [p[0], p[2], p[1], p[3]]

    def _pool(self, node: onnx.NodeProto, a: dict[str, Any], kind: str) -> None:
        kernel = tuple(int(v) for v in a.get("kernel_shape", ()))
        stride = tuple(int(v) for v in a.get("strides", (1,) * len(kernel)))
        dilation = tuple(int(v) for v in a.get("dilations", (1,) * len(kernel)))
        if any(d != 1 for d in dilation):
            self.refuse(node, f"dilations {list(dilation)}: pooling windows cannot be dilated")
            return
        pads = self._pads(node, a, kernel, stride, dilation)
        if pads is None:
            return
        if kind == "avgpool2d" and int(a.get("count_include_pad", 0)) and any(pads):
            self.refuse(
                node,
                "count_include_pad=1 with padding: the avgpool2d layer averages over in-input "
                "pixels only",
            )
            return
        if int(a.get("ceil_mode", 0)):
            h, w = self.shape[1] + pads[0] + pads[1], self.shape[2] + pads[2] + pads[3]
            if (h - kernel[0]) % stride[0] or (w - kernel[1]) % stride[1]:
                self.refuse(
                    node,
                    f"ceil_mode=1 rounds the output size up on input {self.shape}; the layer "
                    "rounds down",
                )
                return
        cfg = {"type": kind, "size": list(kernel), "stride": list(stride), "padding": pads}
        self.add_layer(node, cfg, {})

    def _MaxPool(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self.unused_extra_outputs(node, "Indices")
        self._pool(node, a, "maxpool2d")

    def _AveragePool(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._pool(node, a, "avgpool2d")

    def _GlobalAveragePool(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self.add_layer(node, {"type": "global_avgpool2d"}, {})

    def _BatchNormalization(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        arrays = {}
        for position, key in enumerate(("weight", "bias", "running_mean", "running_var"), 1):
            value = self.const(node, position, key)
            if value is None:
                return
            arrays[key] = value
        if int(a.get("training_mode", 0)):
            self.refuse(node, "training_mode=1: only inference-mode batch norm is taken")
            return
        if not int(a.get("spatial", 1)):
            self.refuse(node, "spatial=0 (per-activation statistics) is not supported")
            return
        self.unused_extra_outputs(node, "running statistics")
        cfg = {
            "type": "batchnorm2d",
            "momentum": _f32(1.0 - _f32(a.get("momentum", 0.9))),
            "eps": _f32(a.get("epsilon", 1e-5)),
        }
        self.add_layer(node, cfg, arrays)

    def _activation(self, node: onnx.NodeProto, cfg: dict[str, Any]) -> None:
        self.add_layer(node, cfg, {})

    def _Relu(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._activation(node, {"type": "relu"})

    def _LeakyRelu(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._activation(node, {"type": "leaky_relu", "alpha": _f32(a.get("alpha", 0.01))})

    def _Sigmoid(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._activation(node, {"type": "sigmoid"})

    def _Tanh(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._activation(node, {"type": "tanh"})

    def _Dropout(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self.unused_extra_outputs(node, "mask")
        rate = _f32(a.get("ratio", 0.5))
        if self.opset >= 12:
            ratio = self.const(node, 1, "ratio")
            rate = 0.5 if ratio is None else _f32(np.asarray(ratio).reshape(-1)[0])
            training = self.const(node, 2, "training_mode")
            if training is not None and bool(np.asarray(training).reshape(-1)[0]):
                self.refuse(node, "training_mode=true: only inference-mode dropout is taken")
                return
        self.add_layer(node, {"type": "dropout", "rate": rate}, {})

    def _flatten(self, node: onnx.NodeProto) -> None:
        if len(self.shape) > 1:
            self.add_layer(node, {"type": "flatten"}, {})

    def _Flatten(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        axis = int(a.get("axis", 1))
        if axis not in (1, 1 - len(self.shape)):  # axis -3 of a 4-D tensor is axis 1 too
            self.refuse(node, f"axis={axis}: only Flatten(axis=1) to (N, features) is taken")
            return
        self._flatten(node)

    def _Reshape(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        target = self.const(node, 1, "shape")
        if target is None:
            return
        t = [int(v) for v in np.asarray(target).reshape(-1)]
        features = int(np.prod(self.shape))
        keeps_batch = len(t) == 2 and (
            (t[0] == 0 and not int(a.get("allowzero", 0)) and t[1] in (-1, features))
            or (t[0] == -1 and t[1] == features)
        )
        if not keeps_batch:
            self.refuse(
                node,
                f"shape {t} on input (N, {', '.join(map(str, self.shape))}) is not a reshape to "
                f"2-D (N, {features}); use [0, -1] or [-1, {features}]",
            )
            return
        self._flatten(node)

    def _Gemm(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        b = self.const(node, 1, "weight B")
        c = self.const(node, 2, "bias C")
        if b is None:
            return
        if int(a.get("transA", 0)):
            self.refuse(node, "transA=1 is not supported (the input is (N, features))")
            return
        if b.ndim != 2:
            self.refuse(node, f"weight B has rank {b.ndim}, needs 2")
            return
        w = (b.T if int(a.get("transB", 0)) else b) * np.float32(a.get("alpha", 1.0))
        bias = None if c is None else self._bias(node, c, w.shape[1], float(a.get("beta", 1.0)))
        if c is not None and bias is None:
            return
        self._dense(node, w, bias)

    def _bias(self, node: onnx.NodeProto, c: np.ndarray, units: int, beta: float) -> Any:
        if c.size not in (1, units) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            self.refuse(node, f"bias of shape {c.shape} is not one value per unit ({units},)")
            return None
        return np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (units,)) * np.float32(beta)

    def _dense(self, node: onnx.NodeProto, w: np.ndarray, bias: np.ndarray | None) -> None:
        if len(self.shape) != 1:
            self.refuse(node, f"needs a 2-D (N, features) input, got (N, {self.shape}): Flatten")
            return
        cfg = {"type": "dense", "units": int(w.shape[1]), "use_bias": bias is not None}
        arrays = {"weight": w} if bias is None else {"weight": w, "bias": bias}
        self.add_layer(node, cfg, arrays)

    def _MatMul(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        w = self.const(node, 1, "weight B")
        if w is None:
            return
        if w.ndim != 2:
            self.refuse(node, f"weight of rank {w.ndim}, needs 2")
            return
        self._dense(node, w, None)

    def _Add(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        last = self.architecture[-1] if self.architecture else None
        if last is None or last["type"] != "dense" or last["use_bias"]:
            self.refuse(node, "Add is taken only right after MatMul, as its bias")
            return
        c = self.const(node, 1, "bias")
        if c is None:
            return
        bias = self._bias(node, c, int(last["units"]), 1.0)
        if bias is not None:
            last["use_bias"] = True
            self.arrays[f"{len(self.architecture) - 1}.bias"] = np.asarray(bias, np.float32)


def read_graph(model: onnx.ModelProto) -> ImportedGraph:
    """Translate a graph into the library's architecture and weights (nothing is written).

    Raises:
        ImportRefused: an invalid model, or nodes the library cannot express (all listed).
    """
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, Exception) as exc:  # the checker raises several kinds
        raise ImportRefused([Refusal(GRAPH, "", f"not a valid ONNX model: {exc}")]) from exc
    reader = _Reader(model)
    imported = reader.read()
    if imported is None:
        raise ImportRefused(reader.refusals)
    return imported


def parse_model(data: bytes) -> onnx.ModelProto:
    """The ModelProto of ``.onnx`` bytes (no external data files are ever read).

    Raises:
        ImportRefused: not a parsable ONNX model.
    """
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ImportRefused([Refusal(GRAPH, "", f"not an ONNX model file: {exc}")]) from exc
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ImportRefused(
                [Refusal(GRAPH, "", f"initializer {tensor.name!r} lives in an external file")]
            )
    return model


def _metadata_json(metadata: dict[str, str], key: str) -> Any:
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ImportOptionsError(f"metadata_props[{key!r}] is not JSON: {exc}") from exc


def build_model(
    data: bytes, name: str, options: ImportOptions | None = None
) -> tuple[Sequential, ModelMeta]:
    """``.onnx`` bytes -> a built model with the graph's weights and its metadata.

    Raises:
        ImportRefused: the graph cannot be expressed (every refusal listed).
        ImportOptionsError: class names of the wrong count, normalisation given twice.
    """
    options = options or ImportOptions()
    imported = read_graph(parse_model(data))
    try:
        model = Sequential.from_spec(imported.architecture, imported.input_shape)
    except SpecError as exc:
        raise ImportRefused([Refusal(GRAPH, "", str(exc))]) from exc
    try:
        model.load_named_arrays(imported.arrays)
    except ArtifactError as exc:
        raise ImportRefused([Refusal(GRAPH, "", f"weights: {exc}")]) from exc
    meta_input = _metadata_json(imported.metadata, META_INPUT) or {}
    meta_pre = _metadata_json(imported.metadata, META_PREPROCESSING)
    meta_classes = _metadata_json(imported.metadata, META_CLASS_NAMES)
    c = imported.input_shape[0]
    if options.mean is not None or options.std is not None:
        if imported.normalisation is not None:
            raise ImportOptionsError(
                "mean/std were given but the graph normalises its input itself (Sub/Mul/Div "
                "nodes before the first layer)"
            )
        mean, std = options.mean or [0.0] * c, options.std or [1.0] * c
    elif meta_pre is not None and imported.normalisation is not None:
        mean, std = meta_pre["mean"], meta_pre["std"]  # our export: the exact values
    elif imported.normalisation is not None:
        mean, std = imported.normalisation
    else:
        mean, std = [0.0] * c, [1.0] * c
    if len(mean) == 1 < c:
        mean = mean * c
    if len(std) == 1 < c:
        std = std * c
    k = model.num_classes
    class_names = options.class_names or meta_classes or [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ImportOptionsError(f"class_names has {len(class_names)} names, the model outputs {k}")
    pixel_range = options.pixel_range or tuple(meta_input.get("pixel_range", DEFAULT_PIXEL_RANGE))
    try:
        meta = ModelMeta(
            name=name,
            architecture=model.architecture,
            input=InputSpec(
                channels=c,
                height=imported.input_shape[1],
                width=imported.input_shape[2],
                dtype=meta_input.get("dtype", "float32"),
                pixel_range=pixel_range,
                resize=options.resize or meta_input.get("resize", "stretch"),
            ),
            preprocessing=Normalisation(mean=mean, std=std),
            class_names=[str(n) for n in class_names],
            dataset={
                "name": "imported from ONNX",
                "producer": imported.producer,
                "onnx_sha256": hashlib.sha256(data).hexdigest(),
            },
        )
    except ValueError as exc:
        raise ImportOptionsError(f"input spec: {exc}") from exc
    return model, meta


@dataclass(frozen=True)
class ImportResult:
    """A published import: its version, metadata (version filled in) and the built model."""

    version: int
    meta: ModelMeta
    model: Sequential


def import_onnx(
    repository: ModelRepository, name: str, data: bytes, options: ImportOptions | None = None
) -> ImportResult:
    """Publish ``.onnx`` bytes as the next version of ``name``; nothing is written on refusal.

    Raises:
        ImportRefused, ImportOptionsError: see :func:`build_model`.
        RepositoryError: an invalid model name.
        OSError: the repository cannot be written.
    """
    check_name(name)
    model, meta = build_model(data, name, options)
    written: list[ModelMeta] = []

    def write(directory: Path) -> None:
        written.append(save_artifact(directory, model, meta))

    version = repository.publish(name, write)
    return ImportResult(version, written[0].model_copy(update={"version": version}), model)
