"""Wire layout of the Open Inference Protocol (KServe V2, package `inference`).

The only module that knows how V2 messages carry tensors. Imported only by the server process
(`server.v2_servicer`): its generated `inference.*` messages clash with tritonclient's copies
in the default protobuf pool, so a process that imports tritonclient must never import it (its
tests run in a pytest process of their own, tests/server_v2codec).

Model mapping: input "input" [-1, C, H, W] (UINT8 or FP32, pixel range), outputs
"probabilities" FP32 [-1, K] and "label" INT64 [-1, 1] (argmax); Triton's classification extension
(output parameter "classification" = k) returns BYTES [-1, k] "probability:index:name".
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from proto.inference import grpc_service_pb2 as pb
from proto.inference import model_config_pb2 as config_pb
from server.codec import Limits, rank_top_k
from server.decoding import PixelWork, estimate_seconds
from server.errors import InvalidInput
from server.images import check_pixels
from server.model import ServedModel
from server.tensors import INPUT_DTYPES, array_from_bytes, check_tensor_shape

PLATFORM = "cnn-numpy"
INPUT_NAME = "input"
PROBABILITIES = "probabilities"
LABEL = "label"
OUTPUT_NAMES = (PROBABILITIES, LABEL)

# V2 datatypes accepted for the input, with their little-endian numpy dtype and the typed
# contents field that carries them.
_INPUT_TYPES: dict[str, tuple[np.dtype, str]] = {
    "UINT8": (INPUT_DTYPES["uint8"], "uint_contents"),
    "FP32": (INPUT_DTYPES["float32"], "fp32_contents"),
}
_CONTENTS_FIELDS = tuple(pb.InferTensorContents.DESCRIPTOR.fields_by_name)
# How messages name the input tensor once its name is known to be INPUT_NAME.
_INPUT_FIELD = f"inputs[0] ({INPUT_NAME!r})"
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
    if tensor.name != INPUT_NAME:
        raise InvalidInput(f"inputs[0].name is {tensor.name!r}; expected {INPUT_NAME!r}")
    field = _INPUT_FIELD  # the name was just checked
    datatype = tensor.datatype
    types = _INPUT_TYPES.get(datatype)
    if types is None:
        raise InvalidInput(
            f"{field}.datatype is {datatype!r}; expected one of {', '.join(sorted(_INPUT_TYPES))}"
        )
    dtype, contents_field = types
    shape = tuple(tensor.shape[:])  # slicing copies the int64s in C, ~2x faster than iterating
    count = check_tensor_shape(shape, model.spec, field, max_images=limits.max_images_per_request)
    has_contents = tensor.HasField("contents")
    raw_contents = request.raw_input_contents
    if len(raw_contents):
        if has_contents:
            raise InvalidInput(
                f"{field}.contents is set together with raw_input_contents; use one of them"
            )
        if len(raw_contents) != 1:
            raise InvalidInput(
                f"raw_input_contents has {len(raw_contents)} entries; expected 1 (one per input)"
            )
        return array_from_bytes(
            raw_contents[0], dtype, shape, count, "raw_input_contents[0]", datatype
        )
    if not has_contents:
        raise InvalidInput(
            f"{field} has no data: set contents.{contents_field} or raw_input_contents"
        )
    contents = tensor.contents
    # ListFields() lists only the non-empty fields: one C call instead of len() of each.
    set_fields = contents.ListFields()
    if len(set_fields) != 1 or set_fields[0][0].name != contents_field:
        for other in _CONTENTS_FIELDS:  # the first wrong field in declaration order, if any
            if other != contents_field and len(getattr(contents, other)):
                raise InvalidInput(
                    f"{field}.contents.{other} is set; datatype {datatype} uses "
                    f"contents.{contents_field}"
                )
    values = getattr(contents, contents_field)
    if len(values) != count:
        raise InvalidInput(
            f"{field}.contents.{contents_field} has {len(values)} elements; shape "
            f"{list(shape)} needs {count}"
        )
    if datatype == "UINT8":
        return _uint8_contents(contents, values, field).reshape(shape)
    return _fp32_contents(contents, values).reshape(shape)


# The contents message holds one field (checked above), so its serialization is that field's
# packed encoding (protobuf wire format): tag, byte length as varint, payload. A copy of the
# payload is ~30x cheaper than converting each element from Python, and the header check
# falls back to that conversion for any other layout (unknown fields, unpacked encoding).
def _packed_tag(field: str) -> bytes:
    """The key of a length-delimited field: its number and wire type 2, as one byte."""
    number = pb.InferTensorContents.DESCRIPTOR.fields_by_name[field].number
    return bytes([number << 3 | 2])  # numbers 1..15 fit one byte


_FP32_TAG = _packed_tag("fp32_contents")
_UINT_TAG = _packed_tag("uint_contents")


@functools.lru_cache(maxsize=256)
def _packed_header(tag: bytes, nbytes: int) -> bytes:
    """`tag` and then `nbytes` as a base-128 varint, low group first."""
    out = bytearray(tag)
    while nbytes > 0x7F:
        out.append(nbytes & 0x7F | 0x80)
        nbytes >>= 7
    out.append(nbytes)
    return bytes(out)


def _packed_payload(contents: pb.InferTensorContents, tag: bytes, nbytes: int) -> bytes | None:
    """The packed payload of the only set field when it is `nbytes` long, else None."""
    wire = contents.SerializeToString()
    header = _packed_header(tag, nbytes)
    if len(wire) != len(header) + nbytes or not wire.startswith(header):
        return None
    return wire[len(header) :]


def _fp32_contents(contents: pb.InferTensorContents, values: Any) -> np.ndarray:
    count = len(values)
    payload = _packed_payload(contents, _FP32_TAG, 4 * count)  # little-endian fixed32
    if payload is None:
        return np.fromiter(values, dtype=np.float32, count=count)
    return np.frombuffer(payload, dtype="<f4")


def _uint8_contents(contents: pb.InferTensorContents, values: Any, field: str) -> np.ndarray:
    # A varint below 128 is the single byte of its value: when the payload has one byte per
    # element, it is the uint8 array itself.
    payload = _packed_payload(contents, _UINT_TAG, len(values))
    if payload is None:
        try:
            payload = bytes(values[:])  # ValueError unless every value is in 0..255
        except ValueError:
            top = max(values[:])
            raise InvalidInput(
                f"{field}.contents.uint_contents has value {top} > 255 (UINT8)"
            ) from None
    return np.frombuffer(payload, dtype=np.uint8)


def decode_inputs(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> np.ndarray:
    """The request's input tensor as (N, C, H, W) float32 in the model's pixel range.

    Raises:
        InvalidInput: wrong input count/name, datatype, shape, byte or element count, NaN,
            values outside the pixel range (messages name the field).
        LimitExceeded: batch larger than max_images_per_request.
    """
    x = _input_array(request, model, limits)
    return check_pixels(x, model.spec, "inputs[0] (values)")


def prepare_inputs(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> PixelWork:
    """`decode_inputs` as work for `server.decoding`, with its cost estimated from the
    payload's size (the raw bytes, or the whole message for typed contents)."""
    raw = request.raw_input_contents
    size = len(raw[0]) if len(raw) == 1 else request.ByteSize()
    return PixelWork(
        estimate_seconds(tensor_bytes=size),
        lambda check: decode_inputs(request, model, limits),
    )


_ALL_OUTPUTS = tuple(RequestedOutput(name) for name in OUTPUT_NAMES)


def requested_outputs(request: pb.ModelInferRequest, model: ServedModel) -> list[RequestedOutput]:
    """Validated output requests (all outputs when none are requested).

    Raises:
        InvalidInput: unknown output name, duplicate, bad classification parameter.
    """
    if not request.outputs:
        return list(_ALL_OUTPUTS)
    out: list[RequestedOutput] = []
    seen: set[str] = set()
    for i, item in enumerate(request.outputs):
        name = item.name
        if name not in OUTPUT_NAMES:
            raise InvalidInput(
                f"outputs[{i}].name is {name!r}; the model has outputs "
                f"{', '.join(map(repr, OUTPUT_NAMES))}"
            )
        if name in seen:
            raise InvalidInput(f"outputs[{i}].name {name!r} is requested twice")
        seen.add(name)
        k = 0
        parameters = item.parameters
        if "classification" in parameters:  # (indexing a missing key would insert it)
            param = parameters["classification"]
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
        out.append(RequestedOutput(name, k))
    return out


_U32 = struct.Struct("<I").pack


def _bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(_U32(len(b)) + b for b in items)


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
    add_output = response.outputs.add
    append_raw = response.raw_output_contents.append
    for item in outputs:
        if item.classification:
            top = min(item.classification, k)
            names = model.class_names
            # f"{float32:f}" formats float(value): the Python floats of rank_top_k are the same.
            strings = [
                f"{p:f}:{c}:{names[c]}".encode()
                for idx, probs in rank_top_k(probabilities, top)
                for c, p in zip(idx, probs, strict=True)
            ]
            add_output(name=item.name, datatype="BYTES", shape=[n, top])
            append_raw(_bytes_tensor(strings))
        elif item.name == PROBABILITIES:
            add_output(name=item.name, datatype="FP32", shape=[n, k])
            append_raw(probabilities.astype("<f4").tobytes())
        else:
            labels = probabilities.argmax(axis=1).astype("<i8")
            add_output(name=item.name, datatype="INT64", shape=[n, 1])
            append_raw(labels.tobytes())
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
        "pixel_range": json.dumps(list(spec.pixel_range)),
        "mean": json.dumps(list(model.normalisation.mean)),
        "std": json.dumps(list(model.normalisation.std)),
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
