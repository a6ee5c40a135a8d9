"""ONNX helpers for the tests: seeded models with non-trivial statistics, small graphs built with
``onnx.helper``, and ONNX Runtime (the referee) running them."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.artifacts import LoadedModel, make_meta
from core.datasets import Normalisation
from core.layers import BatchNorm2D
from core.model import Sequential

#: ONNX Runtime against the library, float32 both: probabilities (in 0..1) within 1e-5. The two
#: sum the same products in another order (BLAS blocking, fused epilogues), which moves a
#: float32 logit by a few ulp per term: measured at most 7e-6 on logits of size ~10 and 1e-6
#: on probabilities (softmax's slope is at most 1/4) over every architecture tested here.
PROBABILITY_ATOL = 1e-5
#: Logits: relative 1e-4 of their size (K up to a few thousand products per sum).
LOGITS_RTOL = 1e-4
LOGITS_ATOL = 1e-4


def seeded_model(
    architecture: list[dict[str, Any]], input_shape: tuple[int, int, int], seed: int = 0
) -> Sequential:
    """An untrained model whose biases and batch-norm statistics are not the trivial 0/1
    (so a wrong mapping of them shows), drawn from ``seed``."""
    model = Sequential.from_spec(architecture, input_shape, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        for param in layer.parameters().values():
            if param.value.ndim == 1:  # biases, batch-norm gamma/beta
                param.value[:] = rng.normal(0.0, 0.3, param.value.shape)
        if isinstance(layer, BatchNorm2D):
            c = layer.running_mean.shape[0]
            layer.running_mean[:] = rng.normal(0.0, 0.5, c)
            layer.running_var[:] = rng.uniform(0.5, 2.0, c)
    return model


def seeded_artifact(
    architecture: list[dict[str, Any]],
    input_shape: tuple[int, int, int],
    *,
    name: str = "net",
    seed: int = 0,
    pixel_range: tuple[float, float] = (0.0, 255.0),
) -> LoadedModel:
    """A :class:`LoadedModel` (not saved) with per-channel normalisation and named classes."""
    model = seeded_model(architecture, input_shape, seed)
    c = input_shape[0]
    meta = make_meta(
        model,
        name=name,
        class_names=[f"class-{i}" for i in range(model.num_classes)],
        normalisation=Normalisation(
            mean=[40.0 + 10 * i for i in range(c)], std=[50.0 + 5 * i for i in range(c)]
        ),
        pixel_range=pixel_range,
    )
    return LoadedModel(model, meta)


def pixels(
    input_shape: tuple[int, ...], n: int = 6, seed: int = 0, hi: float = 255.0
) -> np.ndarray:
    """(n, *input_shape) float32 pixels in 0..hi."""
    return np.random.default_rng(seed).uniform(0.0, hi, (n, *input_shape)).astype(np.float32)


def run_onnx(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Every output of the graph in ONNX Runtime (CPU) for the one input ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [np.asarray(v) for v in session.run(None, {name: x})]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def tensor(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, order="C"), name)


def graph_model(
    nodes: list[onnx.NodeProto],
    initializers: dict[str, np.ndarray],
    input_shape: list[Any],
    output: str,
    *,
    opset: int = 17,
    input_name: str = "x",
    outputs: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    domains: dict[str, int] | None = None,
) -> bytes:
    """A serialised model of ``nodes``: float input ``x`` of ``input_shape`` (names allowed for
    dynamic dimensions) and float output(s) of shape (N, K), both symbolic."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [
            helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", "K"])
            for o in outputs or [output]
        ],
        [tensor(k, v) for k, v in initializers.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid(domain, version)
            for domain, version in {"": opset, **(domains or {})}.items()
        ],
    )
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    return model.SerializeToString()


def weights(shape: tuple[int, ...], seed: int = 0, scale: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)
