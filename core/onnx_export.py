"""Model artifact -> ONNX graph (opset :data:`OPSET`), checked with ``onnx.checker``.

The graph takes **raw pixels**, as the server does: input ``pixels`` float32 (N, C, H, W) with
values in the artifact's pixel range (a dynamic batch dimension ``N``). Its first two nodes are
the artifact's normalisation, ``(x - mean[c]) * (1 / std[c])`` (``Sub`` then ``Mul``, the
reciprocal rounded to float32 exactly as :meth:`core.datasets.Normalisation.apply` rounds it),
so ONNX users get the server's answers from the same pixels. Outputs: ``logits`` (N, K) and
``probabilities`` (N, K) = ``Softmax(logits, axis=1)``, what ``Classify`` returns.

Layers map one to one (weights in the library's layouts need no reordering, except Dense, whose
(I, K) weight is ``Gemm``'s B with ``transB = 0``):

    conv2d -> Conv (pads [top, left, bottom, right], strides, dilations, group)
    maxpool2d -> MaxPool;  avgpool2d -> AveragePool (count_include_pad = 0: padding not counted)
    global_avgpool2d -> GlobalAveragePool + Flatten (the library's output is (C,))
    flatten -> Flatten(axis=1);  dense -> [Flatten] + Gemm
    relu / leaky_relu / sigmoid / tanh -> Relu / LeakyRelu / Sigmoid / Tanh
    dropout -> Dropout(ratio) (identity at inference; kept so an import gets the layer back)
    batchnorm2d -> BatchNormalization (running statistics; ONNX momentum = 1 - ours)

Preprocessing and class names go into ``metadata_props`` as JSON (keys :data:`META_KEYS`):
``cnn.input`` (channels, height, width, dtype, pixel_range, resize), ``cnn.preprocessing``
(mean, std), ``cnn.class_names``, ``cnn.model`` (name, version, created_at). An import of the
file reads them back (:mod:`core.onnx_import`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.artifacts import LoadedModel
from core.errors import CnnError
from core.layers import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)

#: ONNX Runtime runs every op used here at this opset; Dropout's ratio is an input since 12.
OPSET = 17
INPUT_NAME = "pixels"
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"
BATCH_DIM = "N"
PRODUCER_NAME = "cnn-service"
META_INPUT = "cnn.input"
META_PREPROCESSING = "cnn.preprocessing"
META_CLASS_NAMES = "cnn.class_names"
META_MODEL = "cnn.model"
META_KEYS = (META_INPUT, META_PREPROCESSING, META_CLASS_NAMES, META_MODEL)


class ExportError(CnnError, ValueError):
    """A layer has no ONNX translation (a custom layer type)."""


class _Graph:
    """Nodes and initializers appended in order, each output named after the layer index."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(
            numpy_helper.from_array(np.array(value, order="C"), name)
        )  # keeps 0-d
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output


def _pads(pads: tuple[int, int, int, int]) -> list[int]:
    """The library's (top, bottom, left, right) -> ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = pads
    return [top, left, bottom, right]


def _layer_nodes(g: _Graph, layer: Layer, index: int, x: str, in_shape: tuple[int, ...]) -> str:
    """Append the nodes computing ``layer`` (eval mode) on tensor ``x``; return the output name."""
    name = f"{index}.{layer.type_name}"
    out = f"layer{index}"
    f32 = np.float32
    if isinstance(layer, Conv2D):
        assert layer.weight is not None and layer.pads is not None
        inputs = [x, g.const(f"{index}.weight", layer.weight.value.astype(f32))]
        if layer.bias is not None:
            inputs.append(g.const(f"{index}.bias", layer.bias.value.astype(f32)))
        return g.node(
            "Conv",
            inputs,
            out,
            name,
            kernel_shape=list(layer.kernel),
            strides=list(layer.stride),
            dilations=list(layer.dilation),
            pads=_pads(layer.pads),
            group=layer.groups,
        )
    if isinstance(layer, MaxPool2D):
        assert layer.pads is not None
        return g.node(
            "MaxPool",
            [x],
            out,
            name,
            kernel_shape=list(layer.size),
            strides=list(layer.stride),
            pads=_pads(layer.pads),
        )
    if isinstance(layer, AvgPool2D):
        assert layer.pads is not None
        return g.node(
            "AveragePool",
            [x],
            out,
            name,
            kernel_shape=list(layer.size),
            strides=list(layer.stride),
            pads=_pads(layer.pads),
            count_include_pad=0,
        )
    if isinstance(layer, GlobalAvgPool2D):
        pooled = g.node("GlobalAveragePool", [x], f"{out}.pooled", name)
        return g.node("Flatten", [pooled], out, f"{name}.flatten", axis=1)
    if isinstance(layer, Flatten):
        return g.node("Flatten", [x], out, name, axis=1)
    if isinstance(layer, Dense):
        assert layer.weight is not None
        if len(in_shape) != 1:  # Dense flattens a (C, H, W) input itself; Gemm needs 2-D
            x = g.node("Flatten", [x], f"{out}.flat", f"{name}.flatten", axis=1)
        inputs = [x, g.const(f"{index}.weight", layer.weight.value.astype(f32))]
        if layer.bias is not None:
            inputs.append(g.const(f"{index}.bias", layer.bias.value.astype(f32)))
        return g.node("Gemm", inputs, out, name, transB=0)
    if isinstance(layer, ReLU):
        return g.node("Relu", [x], out, name)
    if isinstance(layer, LeakyReLU):
        return g.node("LeakyRelu", [x], out, name, alpha=layer.alpha)
    if isinstance(layer, Sigmoid):
        return g.node("Sigmoid", [x], out, name)
    if isinstance(layer, Tanh):
        return g.node("Tanh", [x], out, name)
    if isinstance(layer, Dropout):
        ratio = g.const(f"{index}.ratio", np.array(layer.rate, f32))
        return g.node("Dropout", [x, ratio], out, name)
    if isinstance(layer, BatchNorm2D):
        assert layer.weight is not None and layer.bias is not None
        return g.node(
            "BatchNormalization",
            [
                x,
                g.const(f"{index}.weight", layer.weight.value.astype(f32)),
                g.const(f"{index}.bias", layer.bias.value.astype(f32)),
                g.const(f"{index}.running_mean", layer.running_mean.astype(f32)),
                g.const(f"{index}.running_var", layer.running_var.astype(f32)),
            ],
            out,
            name,
            epsilon=layer.eps,
            momentum=1.0 - layer.momentum,
        )
    raise ExportError(
        f"layer {index} ({layer.type_name}): no ONNX translation for {type(layer).__name__}"
    )


def metadata(loaded: LoadedModel) -> dict[str, str]:
    """The ``metadata_props`` of an export: JSON strings under :data:`META_KEYS`."""
    meta = loaded.meta
    spec = meta.input
    return {
        META_INPUT: json.dumps(
            {
                "channels": spec.channels,
                "height": spec.height,
                "width": spec.width,
                "dtype": spec.dtype,
                "pixel_range": list(spec.pixel_range),
                "resize": spec.resize,
                "layout": "NCHW",
                "normalised_in_graph": True,
            }
        ),
        META_PREPROCESSING: json.dumps(
            {"mean": list(meta.preprocessing.mean), "std": list(meta.preprocessing.std)}
        ),
        META_CLASS_NAMES: json.dumps(list(meta.class_names)),
        META_MODEL: json.dumps(
            {"name": meta.name, "version": meta.version, "created_at": meta.created_at}
        ),
    }


def export_model(loaded: LoadedModel, version: int | None = None) -> onnx.ModelProto:
    """The ONNX graph of a loaded artifact: raw pixels in, ``logits`` and ``probabilities`` out.

    Args:
        loaded: the artifact (:func:`core.artifacts.load_artifact`).
        version: the repository version, recorded in ``cnn.model`` (else the meta's).

    Raises:
        ExportError: a layer type has no ONNX translation.
    """
    model, meta = loaded.model, loaded.meta
    if version is not None:
        meta = meta.model_copy(update={"version": version})
        loaded = LoadedModel(model, meta, loaded.path, loaded.evaluation)
    c, h, w = model.input_shape
    g = _Graph()
    mean = np.asarray(meta.preprocessing.mean, np.float32).reshape(1, c, 1, 1)
    # the same float32 reciprocal Normalisation.apply multiplies by: bit-equal normalised input
    inv_std = (1.0 / np.asarray(meta.preprocessing.std, np.float64)).astype(np.float32)
    x = g.node("Sub", [INPUT_NAME, g.const("preprocessing.mean", mean)], "centred", "normalise.sub")
    x = g.node(
        "Mul",
        [x, g.const("preprocessing.inv_std", inv_std.reshape(1, c, 1, 1))],
        "normalised",
        "normalise.mul",
    )
    in_shape: tuple[int, ...] = model.input_shape
    for index, (layer, out_shape) in enumerate(zip(model.layers, model.shapes, strict=True)):
        x = _layer_nodes(g, layer, index, x, in_shape)
        in_shape = out_shape
    g.nodes.append(helper.make_node("Identity", [x], [LOGITS_NAME], name="logits"))
    g.node("Softmax", [LOGITS_NAME], PROBABILITIES_NAME, "softmax", axis=1)
    k = model.num_classes
    graph = helper.make_graph(
        g.nodes,
        meta.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, c, h, w])],
        [
            helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, [BATCH_DIM, k]),
            helper.make_tensor_value_info(PROBABILITIES_NAME, TensorProto.FLOAT, [BATCH_DIM, k]),
        ],
        g.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER_NAME,
        doc_string=(
            f"{meta.name} version {meta.version}: raw pixels {INPUT_NAME} (N, {c}, {h}, {w}) in "
            f"{meta.input.pixel_range[0]:g}..{meta.input.pixel_range[1]:g}, normalised in the "
            f"graph; outputs {LOGITS_NAME} and {PROBABILITIES_NAME} (N, {k})"
        ),
    )
    # IR version 8 (ONNX 1.10+): what ONNX Runtime releases of the last years all load
    proto.ir_version = 8
    helper.set_model_props(proto, metadata(loaded))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_bytes(loaded: LoadedModel, version: int | None = None) -> bytes:
    """:func:`export_model` serialised (the ``.onnx`` file's bytes)."""
    return export_model(loaded, version).SerializeToString()
