"""Wire layout of Classifier.Explain: `ExplainRequest` -> checked ask, `Explanation` -> response.

The Explain part of `server.codec` (whose image decoding and top-k ranking it reuses); every
error names the request field.
"""

from __future__ import annotations

import numpy as np

from proto.cnn.v1 import classifier_pb2 as pb
from server import codec
from server.decoding import PixelWork
from server.errors import InvalidInput
from server.explainer import (
    ExplainAsk,
    ExplainLimits,
    Explanation,
    check_size,
    check_target,
    select_layers,
    tensor_bytes,
)
from server.model import ServedModel


def decode_explain(
    request: pb.ExplainRequest, model: ServedModel, limits: codec.Limits, explain: ExplainLimits
) -> tuple[ExplainAsk, PixelWork]:
    """Check everything a request can be checked for before computing; return the ask and
    the pixel work producing (1, C, H, W) float32 in the pixel range.

    Raises:
        InvalidInput: no image, a bad image, target or layer (naming the field).
        LimitExceeded: image limits as Classify; too many layers; float32 tensors over the
            response limit.
    """
    if not request.HasField("image"):
        raise InvalidInput("image is required: set 'image.encoded' or 'image.tensor'")
    target = request.target if request.HasField("target") else None
    check_target(model, target)
    layers = select_layers(
        model, list(request.layers), list(request.layer_types), request.skip_feature_maps, explain
    )
    check_size(tensor_bytes(model, layers), explain, "the saliency and feature maps (float32)")
    work = codec.prepare_image(request.image, model.spec, limits, "image")
    return ExplainAsk(target, layers, request.want_png), work


def _tensor(x: np.ndarray) -> pb.Tensor:
    data = np.ascontiguousarray(x, dtype="<f4")
    return pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=list(data.shape), data=data.tobytes())


def encode_explain(result: Explanation, top_k: int, explain: ExplainLimits) -> pb.ExplainResponse:
    """The response for `result`.

    Raises:
        LimitExceeded: the response (with its PNGs) is over the response limit.
    """
    model = result.model
    names = model.target_names if model.is_regression else model.class_names
    response = pb.ExplainResponse(
        model=model.name,
        version=model.version,
        task=model.task,
        outputs=result.outputs.tolist(),
        target=result.target,
        target_name=names[result.target] if result.target < len(names) else "",
        target_score=result.target_score,
        saliency=_tensor(result.saliency),
        saliency_max=float(result.saliency.max()) if result.saliency.size else 0.0,
        saliency_scale=result.saliency_scale,
    )
    if not model.is_regression:
        probabilities = result.outputs[None]
        ranked = codec.encode_classify(model, probabilities, top_k).results[0]
        response.prediction.CopyFrom(ranked)
    if result.saliency_png is not None:
        png = result.saliency_png
        response.saliency_png.CopyFrom(pb.Png(data=png.data, width=png.width, height=png.height))
    for layer in result.layers:
        field = layer.field
        entry = response.layers.add(
            index=layer.index,
            type=layer.type,
            maps=_tensor(layer.maps),
            min=float(layer.maps.min()),
            max=float(layer.maps.max()),
            columns=layer.columns,
            tile_scale=layer.tile_scale,
            global_receptive_field=field.is_global,
        )
        if not field.is_global:
            entry.receptive_field.extend(int(v) for v in field.size)
            entry.jump.extend(int(v) for v in field.jump)
            entry.start.extend(float(v) for v in field.start)
        if layer.png is not None:
            entry.png.CopyFrom(
                pb.Png(data=layer.png.data, width=layer.png.width, height=layer.png.height)
            )
    check_size(response.ByteSize(), explain, "the response")
    return response
