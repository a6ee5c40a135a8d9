"""The typed result of `CnnClient.explain` and its decoding from `cnn.v1.ExplainResponse`
(see proto/cnn/v1/classifier.proto for every field's units and the pictures' layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proto.cnn.v1 import classifier_pb2


@dataclass(frozen=True)
class ExplainedLayer:
    """One layer's feature maps for the explained image.

    `maps` is (C, H', W') float32. `png` (empty without `want_png`) is a grid of the C maps,
    `columns` per row, each tile enlarged `tile_scale` times. `receptive_field` and `jump`
    (height, width) and `start` (row, column) are in input pixels, None for a global field:
    unit (y, x) sees `receptive_field` pixels centred at `start + (y, x) * jump`.
    """

    index: int
    type: str
    maps: np.ndarray
    png: bytes
    columns: int
    tile_scale: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    start: tuple[float, float] | None


@dataclass(frozen=True)
class ExplainResult:
    """What `Classifier.Explain` answered for one image.

    Attributes:
        task: "classification" or "regression".
        outputs: (K,) float32: class probabilities, or predictions in target units.
        class_indices, class_names, probabilities: the top-k classes (empty for regression).
        target, target_name: the output explained; target_score its logit (classification) or
            standardised output (regression).
        saliency: (H, W) float32, max over channels of |d target_score / d normalised input|.
        saliency_png: heat map PNG bytes (empty without `want_png`), `saliency_scale` pixels
            per input pixel per side.
        layers: the feature maps asked for, by ascending layer index.
    """

    model: str
    version: int
    task: str
    outputs: np.ndarray
    class_indices: list[int]
    class_names: list[str]
    probabilities: list[float]
    target: int
    target_name: str
    target_score: float
    saliency: np.ndarray
    saliency_png: bytes
    saliency_scale: int
    layers: list[ExplainedLayer]


def float_tensor(tensor: classifier_pb2.Tensor) -> np.ndarray:
    """A FLOAT32 `Tensor` of a response as a float32 array of its shape."""
    shape = tuple(int(d) for d in tensor.shape)
    return np.frombuffer(tensor.data, dtype="<f4").astype(np.float32).reshape(shape)


def explain_result(reply: classifier_pb2.ExplainResponse) -> ExplainResult:
    prediction = reply.prediction
    return ExplainResult(
        model=reply.model,
        version=reply.version,
        task=reply.task,
        outputs=np.asarray(reply.outputs, np.float32),
        class_indices=list(prediction.class_indices),
        class_names=list(prediction.class_names),
        probabilities=[float(p) for p in prediction.probabilities],
        target=reply.target,
        target_name=reply.target_name,
        target_score=reply.target_score,
        saliency=float_tensor(reply.saliency),
        saliency_png=reply.saliency_png.data,
        saliency_scale=reply.saliency_scale,
        layers=[_layer(layer) for layer in reply.layers],
    )


def _layer(layer: classifier_pb2.LayerMaps) -> ExplainedLayer:
    local = not layer.global_receptive_field
    return ExplainedLayer(
        index=layer.index,
        type=layer.type,
        maps=float_tensor(layer.maps),
        png=layer.png.data,
        columns=layer.columns,
        tile_scale=layer.tile_scale,
        receptive_field=(int(layer.receptive_field[0]), int(layer.receptive_field[1]))
        if local
        else None,
        jump=(int(layer.jump[0]), int(layer.jump[1])) if local else None,
        start=(float(layer.start[0]), float(layer.start[1])) if local else None,
    )
