"""Wire layout of the Open Inference Protocol (KServe V2, package `inference`).

The only module that knows how V2 messages carry tensors. Imported only by the server process
(`server.v2_servicer`): its generated `inference.*` messages clash with tritonclient's copies
in the default protobuf pool, so test processes must never import it.

Model mapping: input "input" [-1, C, H, W] (UINT8 or FP32, pixel range), outputs
"probabilities" FP32 [-1, K] and "label" INT64 [-1, 1] (argmax); Triton's classification extension
(output parameter "classification" = k) returns BYTES [-1, k] "probability:index:name".
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from proto.inference import grpc_service_pb2 as pb
from proto.inference import model_config_pb2 as config_pb
from server.codec import Limits
from server.errors import InvalidInput, LimitExceeded
from server.images import check_image_shape, check_pixels
from server.model import ServedModel

PLATFORM = "cnn-numpy"
INPUT_NAME = "input"
PROBABILITIES = "probabilities"
LABEL = "label"
OUTPUT_NAMES = (PROBABILITIES, LABEL)

# V2 datatypes accepted for the input, with their little-endian numpy dtype and the typed
# contents field that carries them.
_INPUT_TYPES: dict[str, tuple[np.dtype, str]] = {
    "UINT8": (np.dtype("<u1"), "uint_contents"),
    "FP32": (np.dtype("<f4"), "fp32_contents"),
}
_CONTENTS_FIELDS = tuple(pb.InferTensorContents.DESCRIPTOR.fields_by_name)
_CONFIG_TYPES = {"UINT8": config_pb.TYPE_UINT8, "FP32": config_pb.TYPE_FP32}


def input_datatype(model: ServedModel) -> str:
    """The V2 datatype the artifact declares for raw input ("UINT8" or "FP32")."""
    return "UINT8" if model.spec.dtype == "uint8" else "FP32"


@dataclass(frozen=True)
class RequestedOutput:
    """One output the client asked for; `classification` > 0 selects the top-k strings."""

    name: str
    classification: int = 0


def _input_array(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> np.ndarray:
    if len(request.inputs) != 1:
        raise InvalidInput(
            f"inputs has {len(request.inputs)} tensors; the model takes exactly one, "
            f"named {INPUT_NAME!r}"
        )
    tensor = request.inputs[0]
    field = f"inputs[0] ({tensor.name!r})"
    if tensor.name != INPUT_NAME:
        raise InvalidInput(f"inputs[0].name is {tensor.name!r}; expected {INPUT_NAME!r}")
    if tensor.datatype not in _INPUT_TYPES:
        raise InvalidInput(
            f"{field}.datatype is {tensor.datatype!r}; expected one of "
            f"{', '.join(sorted(_INPUT_TYPES))}"
        )
    dtype, contents_field = _INPUT_TYPES[tensor.datatype]
    shape = tuple(int(d) for d in tensor.shape)
    spec = model.spec
    if len(shape) != 4 or any(d < 1 for d in shape):
        raise InvalidInput(
            f"{field}.shape is {list(shape)}; expected [N, {spec.channels}, {spec.height}, "
            f"{spec.width}] with N >= 1"
        )
    if shape[0] > limits.max_images_per_request:
        raise LimitExceeded(
            f"{field}.shape has batch size {shape[0]}; max_images_per_request is "
            f"{limits.max_images_per_request}"
        )
    check_image_shape(shape, spec, f"{field}.shape", batched=True)
    count = shape[0] * shape[1] * shape[2] * shape[3]
    has_contents = tensor.HasField("contents")
    if len(request.raw_input_contents):
        if has_contents:
            raise InvalidInput(
                f"{field}.contents is set together with raw_input_contents; use one of them"
            )
        if len(request.raw_input_contents) != 1:
            raise InvalidInput(
                f"raw_input_contents has {len(request.raw_input_contents)} entries; expected 1 "
                "(one per input)"
            )
        raw = request.raw_input_contents[0]
        expected = count * dtype.itemsize
        if len(raw) != expected:
            raise InvalidInput(
                f"raw_input_contents[0] has {len(raw)} bytes; {field} {tensor.datatype} "
                f"shape {list(shape)} needs {expected} bytes"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if not has_contents:
        raise InvalidInput(
            f"{field} has no data: set contents.{contents_field} or raw_input_contents"
        )
    for other in _CONTENTS_FIELDS:
        if other != contents_field and len(getattr(tensor.contents, other)):
            raise InvalidInput(
                f"{field}.contents.{other} is set; datatype {tensor.datatype} uses "
                f"contents.{contents_field}"
            )
    values = getattr(tensor.contents, contents_field)
    if len(values) != count:
        raise InvalidInput(
            f"{field}.contents.{contents_field} has {len(values)} elements; shape "
            f"{list(shape)} needs {count}"
        )
    if tensor.datatype == "UINT8":
        wide = np.asarray(values, dtype=np.uint64)
        if wide.size and int(wide.max()) > 255:
            raise InvalidInput(
                f"{field}.contents.uint_contents has value {int(wide.max())} > 255 (UINT8)"
            )
        return wide.astype(np.uint8).reshape(shape)
    return np.asarray(values, dtype=np.float32).reshape(shape)


def decode_inputs(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> np.ndarray:
    """The request's input tensor as (N, C, H, W) float32 in the model's pixel range.

    Raises:
        InvalidInput: wrong input count/name, datatype, shape, byte or element count, NaN,
            values outside the pixel range (messages name the field).
        LimitExceeded: batch larger than max_images_per_request.
    """
    x = _input_array(request, model, limits)
    return check_pixels(x, model.spec, "inputs[0] (values)")


def requested_outputs(request: pb.ModelInferRequest, model: ServedModel) -> list[RequestedOutput]:
    """Validated output requests (all outputs when none are requested).

    Raises:
        InvalidInput: unknown output name, duplicate, bad classification parameter.
    """
    if not request.outputs:
        return [RequestedOutput(name) for name in OUTPUT_NAMES]
    out: list[RequestedOutput] = []
    seen: set[str] = set()
    for i, item in enumerate(request.outputs):
        if item.name not in OUTPUT_NAMES:
            raise InvalidInput(
                f"outputs[{i}].name is {item.name!r}; the model has outputs "
                f"{', '.join(map(repr, OUTPUT_NAMES))}"
            )
        if item.name in seen:
            raise InvalidInput(f"outputs[{i}].name {item.name!r} is requested twice")
        seen.add(item.name)
        k = 0
        for key, param in item.parameters.items():
            if key != "classification":
                continue
            kind = param.WhichOneof("parameter_choice")
            if kind not in ("int64_param", "uint64_param"):
                raise InvalidInput(
                    f"outputs[{i}].parameters['classification'] must be an integer, got {kind}"
                )
            k = int(getattr(param, kind))
            if k < 1:
                raise InvalidInput(
                    f"outputs[{i}].parameters['classification'] is {k}; it must be >= 1"
                )
            k = min(k, model.num_classes)
        out.append(RequestedOutput(item.name, k))
    return out


def _bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def encode_infer_response(
    request: pb.ModelInferRequest,
    model: ServedModel,
    probabilities: np.ndarray,
    outputs: list[RequestedOutput],
) -> pb.ModelInferResponse:
    """Outputs as raw_output_contents (little-endian; BYTES length-prefixed)."""
    response = pb.ModelInferResponse(
        model_name=model.name, model_version=str(model.version), id=request.id
    )
    n, k = probabilities.shape
    for item in outputs:
        if item.classification:
            top = min(item.classification, k)
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
            names = model.class_names
            strings = [
                f"{probabilities[r, c]:f}:{c}:{names[c]}".encode()
                for r in range(n)
                for c in order[r]
            ]
            response.outputs.add(name=item.name, datatype="BYTES", shape=[n, top])
            response.raw_output_contents.append(_bytes_tensor(strings))
        elif item.name == PROBABILITIES:
            response.outputs.add(name=item.name, datatype="FP32", shape=[n, k])
            response.raw_output_contents.append(probabilities.astype("<f4").tobytes())
        else:
            labels = probabilities.argmax(axis=1).astype("<i8")
            response.outputs.add(name=item.name, datatype="INT64", shape=[n, 1])
            response.raw_output_contents.append(labels.tobytes())
    return response


def encode_metadata(model: ServedModel, versions: list[int]) -> pb.ModelMetadataResponse:
    spec = model.spec
    Tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=model.name,
        versions=[str(v) for v in versions],
        platform=PLATFORM,
        inputs=[
            Tensor(
                name=INPUT_NAME,
                datatype=input_datatype(model),
                shape=[-1, spec.channels, spec.height, spec.width],
            )
        ],
        outputs=[
            Tensor(name=PROBABILITIES, datatype="FP32", shape=[-1, model.num_classes]),
            Tensor(name=LABEL, datatype="INT64", shape=[-1, 1]),
        ],
    )


def encode_config(model: ServedModel, max_batch_size: int, delay_us: int) -> pb.ModelConfigResponse:
    spec = model.spec
    params = {
        "version": str(model.version),
        "class_names": json.dumps(list(model.class_names)),
        "pixel_range": json.dumps([spec.pixel_min, spec.pixel_max]),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
    }
    config = config_pb.ModelConfig(
        name=model.name,
        platform=PLATFORM,
        backend="cnn",
        max_batch_size=max_batch_size,
        input=[
            config_pb.ModelInput(
                name=INPUT_NAME,
                data_type=_CONFIG_TYPES[input_datatype(model)],
                format=config_pb.ModelInput.FORMAT_NCHW,
                dims=[spec.channels, spec.height, spec.width],
            )
        ],
        output=[
            config_pb.ModelOutput(
                name=PROBABILITIES, data_type=config_pb.TYPE_FP32, dims=[model.num_classes]
            ),
            config_pb.ModelOutput(name=LABEL, data_type=config_pb.TYPE_INT64, dims=[1]),
        ],
        dynamic_batching=config_pb.ModelDynamicBatching(max_queue_delay_microseconds=delay_us),
    )
    for key, value in params.items():
        config.parameters[key].string_value = value
    return pb.ModelConfigResponse(config=config)
