"""Wire layout of the own API (`cnn.v1.Classifier`): protobuf <-> numpy / ServedModel.

The only module that knows how `proto/cnn/v1/classifier.proto` messages carry images and
results. Every error names the request field (e.g. `images[3].tensor.data`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.regression import RegressionReport
from proto.cnn.v1 import classifier_pb2 as pb
from server.decoding import Check, PixelWork, estimate_seconds, no_check
from server.errors import InvalidInput, LimitExceeded
from server.images import (
    check_decoded_pixels,
    check_pixels,
    decode_encoded,
    read_encoded,
    validate_pixels,
)
from server.model import ServedModel
from server.tensors import INPUT_DTYPES, array_from_bytes, check_tensor_shape

if TYPE_CHECKING:
    from PIL import Image

    from core.artifacts import InputSpec
    from core.datasets import Normalisation
    from core.evaluation import Report

DEFAULT_TOP_K = 5

_DTYPES: dict[int, np.dtype] = {
    pb.DATA_TYPE_UINT8: INPUT_DTYPES["uint8"],
    pb.DATA_TYPE_FLOAT32: INPUT_DTYPES["float32"],
}


#: Default of `Limits.max_decoded_pixels` (and of CNN_MAX_DECODED_PIXELS): four images of the
#: largest default side, 4096 x 4096.
DEFAULT_MAX_DECODED_PIXELS = 4 * 4096 * 4096


@dataclass(frozen=True)
class Limits:
    """Request limits the codecs enforce (from Settings)."""

    max_images_per_request: int
    max_image_side: int
    # All encoded images of one request together, as their headers say: bounds the decode
    # time one request can claim (each side is bounded by max_image_side already).
    max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS


def tensor_to_array(
    tensor: pb.Tensor, spec: InputSpec, field: str, *, max_images: int | None
) -> np.ndarray:
    """A `cnn.v1.Tensor` as a numpy array of the model's input shape: one image, or a batch
    of at most ``max_images`` (checks in `server.tensors`).

    Raises:
        InvalidInput: unknown dtype, a bad shape, byte count not matching the shape.
        LimitExceeded: a batch of more than ``max_images`` images.
    """
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None:
        known = tensor.dtype in pb.DataType.values()
        name = pb.DataType.Name(tensor.dtype) if known else str(tensor.dtype)
        raise InvalidInput(
            f"{field}.dtype is {name}; expected DATA_TYPE_UINT8 or DATA_TYPE_FLOAT32"
        )
    shape = tuple(tensor.shape[:])  # slicing copies the int64s in C, ~2x faster than iterating
    count = check_tensor_shape(shape, spec, field, max_images=max_images)
    return array_from_bytes(tensor.data, dtype, shape, count, f"{field}.data")


def prepare_images(request: pb.ClassifyRequest, model: ServedModel, limits: Limits) -> PixelWork:
    """Check the request's structure and limits now; return the pixel work still to do.

    Cheap whatever the images' size (encoded images: only their headers are read), so it
    runs on the event loop; the `PixelWork` decodes and checks the pixels, on the loop or off
    it (`server.decoding`), and produces (N, C, H, W) float32 in the model's pixel range.

    Raises (now, or from the work where noted):
        InvalidInput: no images / both `images` and `batch`, bad shapes, dtypes, byte counts,
            undecodable PNG/JPEG headers; from the work: NaN/inf, out-of-range values,
            corrupt image data (messages name the field).
        LimitExceeded: too many images, an image side over max_image_side, or images that
            decode to more than max_decoded_pixels pixels in all.
    """
    spec = model.spec
    images = request.images
    if request.HasField("batch"):
        if len(images):
            raise InvalidInput("give either 'images' or 'batch', not both")
        x = tensor_to_array(request.batch, spec, "batch", max_images=limits.max_images_per_request)
        return PixelWork(
            estimate_seconds(tensor_bytes=x.nbytes), lambda check: check_pixels(x, spec, "batch")
        )
    n = len(images)
    if n == 0:
        raise InvalidInput("no images: set 'images' (one or more) or 'batch'")
    if n > limits.max_images_per_request:
        raise LimitExceeded(
            f"images has {n} entries; max_images_per_request is {limits.max_images_per_request}"
        )
    tensors: list[tuple[int, np.ndarray, str]] = []
    encoded: list[tuple[int, Image.Image, str]] = []
    tensor_bytes = pixels = 0
    for i, image in enumerate(images):
        kind = image.WhichOneof("data")
        if kind == "tensor":
            field = f"images[{i}].tensor"
            arr = tensor_to_array(image.tensor, spec, field, max_images=None)
            tensors.append((i, arr, field))
            tensor_bytes += arr.nbytes
        elif kind == "encoded":
            field = f"images[{i}].encoded"
            header = read_encoded(image.encoded, spec, limits.max_image_side, field)
            encoded.append((i, header, field))
            pixels += header.width * header.height
        else:
            raise InvalidInput(f"images[{i}] is empty: set 'encoded' or 'tensor'")
    check_decoded_pixels(pixels, len(encoded), limits.max_decoded_pixels)
    shape = spec.shape

    def produce(check: Check) -> np.ndarray:
        out = np.empty((n, *shape), dtype=np.float32)
        for i, arr, field in tensors:
            # check_pixels' float32 result would be one more copy; out[i] = casts while copying.
            validate_pixels(arr, spec, field)
            out[i] = arr.reshape(shape)
        for i, header, field in encoded:
            check()
            out[i] = decode_encoded(header, spec, field)
        return out

    seconds = estimate_seconds(images=len(encoded), pixels=pixels, tensor_bytes=tensor_bytes)
    return PixelWork(seconds, produce)


def prepare_image(image: pb.Image, spec: InputSpec, limits: Limits, field: str) -> PixelWork:
    """One `Image` message (Explain's): the checks of `prepare_images` for one entry now, the
    pixel work producing (1, C, H, W) float32 in the model's pixel range later.

    Raises (now, or from the work where noted):
        InvalidInput: an empty image, bad tensor shape/dtype/byte count, an undecodable header;
            from the work: NaN/inf, out-of-range values, corrupt image data (naming `field`).
        LimitExceeded: an image side over max_image_side, or more than max_decoded_pixels.
    """
    kind = image.WhichOneof("data")
    shape = spec.shape
    if kind == "tensor":
        arr = tensor_to_array(image.tensor, spec, f"{field}.tensor", max_images=None)

        def from_tensor(check: Check) -> np.ndarray:
            validate_pixels(arr, spec, f"{field}.tensor")
            return arr.reshape(1, *shape).astype(np.float32)

        return PixelWork(estimate_seconds(tensor_bytes=arr.nbytes), from_tensor)
    if kind == "encoded":
        header = read_encoded(image.encoded, spec, limits.max_image_side, f"{field}.encoded")
        pixels = header.width * header.height
        check_decoded_pixels(pixels, 1, limits.max_decoded_pixels)

        def from_encoded(check: Check) -> np.ndarray:
            return decode_encoded(header, spec, f"{field}.encoded")[None]

        return PixelWork(estimate_seconds(images=1, pixels=pixels), from_encoded)
    raise InvalidInput(f"{field} is empty: set '{field}.encoded' or '{field}.tensor'")


def decode_images(request: pb.ClassifyRequest, model: ServedModel, limits: Limits) -> np.ndarray:
    """The request's images as (N, C, H, W) float32 in the model's pixel range, at once:
    `prepare_images` and its work, in the calling thread.

    Raises:
        InvalidInput, LimitExceeded: as `prepare_images`.
    """
    return prepare_images(request, model, limits).produce(no_check)


def resolve_top_k(top_k: int, num_classes: int) -> int:
    return min(top_k or DEFAULT_TOP_K, num_classes)


# Up to this many probabilities per request, sorting each row in Python (~0.4 us for 10
# floats) beats the reference's numpy calls (~4 us fixed); above it numpy's speed wins.
_PY_SORT_MAX = 64


def rank_top_k(probabilities: np.ndarray, k: int) -> list[tuple[list[int], list[float]]]:
    """(N, K) probabilities -> per row, the k largest (indices, values), largest first.

    Ties keep index order and NaN sorts last: the order of a stable argsort of -p, exactly
    `rank_top_k_reference`'s result, without its fixed numpy costs on small requests.
    """
    n, num = probabilities.shape
    if n * num > _PY_SORT_MAX:
        return rank_top_k_reference(probabilities, k)
    out = []
    for row in probabilities.tolist():
        total = sum(row)
        if total != total:  # NaN somewhere (or inf - inf): Python's sort has no order for NaN
            return rank_top_k_reference(probabilities, k)
        # reverse=True keeps equal keys in their original order: the sort stays stable.
        idx = sorted(range(num), key=row.__getitem__, reverse=True)[:k]
        out.append((idx, [row[i] for i in idx]))
    return out


def rank_top_k_reference(probabilities: np.ndarray, k: int) -> list[tuple[list[int], list[float]]]:
    """The readable twin of `rank_top_k` (same signature and result); the test oracle."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(probabilities, order, axis=1)
    return list(zip(order.tolist(), top.tolist(), strict=True))


def encode_classify(
    model: ServedModel, probabilities: np.ndarray, top_k: int
) -> pb.ClassifyResponse:
    """(N, K) probabilities -> ClassifyResponse with the top-k classes per image."""
    k = resolve_top_k(top_k, model.num_classes)
    response = pb.ClassifyResponse(model=model.name, version=model.version)
    names = model.class_names
    add = response.results.add
    for idx, probs in rank_top_k(probabilities, k):
        add(class_indices=idx, class_names=[names[i] for i in idx], probabilities=probs)
    return response


def encode_model(model: ServedModel, versions: list[int]) -> pb.GetModelResponse:
    """Everything GetModel tells about one version."""
    summary = model.summary_dict()
    response = pb.GetModelResponse(
        name=model.name,
        version=model.version,
        versions=versions,
        input=encode_input_spec(model.spec, model.normalisation),
        class_names=list(model.class_names),
        summary_text=str(summary.get("text", "")),
        total_parameters=int(summary.get("total_params", 0)),
        metrics=model.metrics(),
        dataset=_dataset_name(model),
        created_at=model.meta_field("created_at"),
        job_id=model.meta_field("job_id"),
        weights_sha256=model.meta_field("weights_sha256"),
        architecture_json=model.architecture_json(),
        task=model.task,
        target_names=list(model.target_names),
    )
    if model.evaluation is not None:
        response.evaluation.CopyFrom(encode_evaluation(model.evaluation))
    response.layers.extend(encode_layers(summary))
    return response


def encode_input_spec(spec: InputSpec, normalisation: Normalisation) -> pb.InputSpec:
    """A version's input spec and per-channel normalisation as the wire message."""
    return pb.InputSpec(
        channels=spec.channels,
        height=spec.height,
        width=spec.width,
        dtype=spec.dtype,
        pixel_min=spec.pixel_range[0],
        pixel_max=spec.pixel_range[1],
        mean=list(normalisation.mean),
        std=list(normalisation.std),
        resize=spec.resize,
    )


def encode_layers(summary: dict[str, Any]) -> list[pb.LayerSummary]:
    """The rows of `core.summary.Summary.to_dict()`, receptive fields included."""
    rows = []
    for layer in summary.get("layers", []):
        rf = layer.get("receptive_field")
        rows.append(
            pb.LayerSummary(
                index=int(layer["index"]),
                type=str(layer["type"]),
                output_shape=[int(d) for d in layer["output_shape"]],
                parameters=int(layer.get("params", 0)),
                trainable_parameters=int(layer.get("trainable_params", 0)),
                global_receptive_field=rf is None,
                receptive_field=[int(v) for v in rf["size"]] if rf else [],
                jump=[int(v) for v in rf["jump"]] if rf else [],
                start=[float(v) for v in rf["start"]] if rf else [],
            )
        )
    return rows


def encode_evaluation(report: Report) -> pb.EvaluationReport:
    """`core.evaluation.EvaluationReport` -> the wire message (the same fields); a
    `core.regression.RegressionReport` -> split, samples, task and its `regression` part."""
    if isinstance(report, RegressionReport):
        return pb.EvaluationReport(
            split=report.split,
            samples=report.samples,
            task=report.task,
            regression=pb.RegressionMetrics(
                targets=[
                    pb.TargetMetrics(name=t.name, mae=t.mae, rmse=t.rmse, r2=t.r2)
                    for t in report.targets
                ],
                mae=report.mae,
                rmse=report.rmse,
                r2=report.r2,
            ),
        )
    return pb.EvaluationReport(
        task=report.task,
        split=report.split,
        samples=report.samples,
        accuracy=report.accuracy,
        top_k=[pb.TopKAccuracy(k=t.k, accuracy=t.accuracy) for t in report.top_k],
        classes=[
            pb.ClassMetrics(
                name=c.name, precision=c.precision, recall=c.recall, f1=c.f1, support=c.support
            )
            for c in report.classes
        ],
        macro_precision=report.macro_precision,
        macro_recall=report.macro_recall,
        macro_f1=report.macro_f1,
        confusion_matrix=report.confusion_matrix,
        loss=report.loss,
    )


def _dataset_name(model: ServedModel) -> str:
    dataset = getattr(model.meta, "dataset", None)
    if isinstance(dataset, dict):
        return str(dataset.get("name", "") or json.dumps(dataset))
    return "" if dataset is None else str(dataset)
