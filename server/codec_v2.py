"""Wire layout of the Open Inference Protocol (KServe V2, package `inference`).

The only module that knows how V2 messages carry tensors. Imported only by the server process
(`server.v2_servicer`): its generated `inference.*` messages clash with tritonclient's copies
in the default protobuf pool, so a process that imports tritonclient must never import it (its
tests run in a pytest process of their own, tests/server_v2codec).

Model mapping: a request carries exactly one of two inputs (both `optional` in ModelConfig):
- "input" [-1, C, H, W], UINT8 or FP32 (the artifact's dtype): raw pixels already of the
  model's size, in its pixel range; never resized.
- "image" BYTES [-1] (also sent as [N, 1]): one PNG or JPEG file per element, of any size,
  grey or colour, in raw_input_contents (each element a 4-byte little-endian length, then
  its bytes, as Triton lays BYTES out) or contents.bytes_contents. The server reads every
  header first (limits CNN_MAX_IMAGES_PER_REQUEST, CNN_MAX_IMAGE_SIDE, CNN_MAX_DECODED_PIXELS
  checked before any pixel is decoded), then decodes as Classify does (`server.images`,
  `core.artifacts.image_input`): converted to C channels (grey "L" or "RGB"), brought to
  H x W by the artifact's resize mode ("stretch": bilinear resize of both sides; "crop":
  aspect kept, the largest centred region of the target's aspect cut out, then bilinear
  resize), 0..255 rescaled to the pixel range.
Both are then normalised per channel, (x - mean) / std, with the data set's statistics.
Outputs: "probabilities" FP32 [-1, K] and "label" INT64 [-1, 1] (argmax); Triton's
classification extension (output parameter "classification" = k) returns BYTES [-1, k]
"probability:index:name". A regression model (artifact task "regression") has one output,
"prediction" FP32 [-1, K]: its K targets in their own units (the network's standardised
outputs times the training targets' std plus their mean); the "classification" parameter is
refused for it.

ModelConfig's `parameters` (string values) describe the preprocessing: "channels",
"height", "width" (the input size), "resize" ("stretch" or "crop"), "pixel_range" (JSON
[min, max]), "mean" and "std" (JSON lists, per channel), plus "task" ("classification" or
"regression"), "class_names" (JSON list; a regression model: "target_names", the columns of
"prediction", and "prediction_units": "target units") and "version".
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
from server.decoding import Check, PixelWork, estimate_seconds, no_check
from server.errors import InvalidInput, LimitExceeded
from server.images import check_decoded_pixels, check_pixels, decode_encoded, read_encoded
from server.model import ServedModel
from server.tensors import INPUT_DTYPES, array_from_bytes, check_tensor_shape

PLATFORM = "cnn-numpy"
INPUT_NAME = "input"
IMAGE_NAME = "image"
PROBABILITIES = "probabilities"
LABEL = "label"
OUTPUT_NAMES = (PROBABILITIES, LABEL)
PREDICTION = "prediction"
REGRESSION_OUTPUT_NAMES = (PREDICTION,)

# V2 datatypes accepted for the input, with their little-endian numpy dtype and the typed
# contents field that carries them.
_INPUT_TYPES: dict[str, tuple[np.dtype, str]] = {
    "UINT8": (INPUT_DTYPES["uint8"], "uint_contents"),
    "FP32": (INPUT_DTYPES["float32"], "fp32_contents"),
}
_CONTENTS_FIELDS = tuple(pb.InferTensorContents.DESCRIPTOR.fields_by_name)
# How messages name the input tensor once its name is known to be INPUT_NAME / IMAGE_NAME.
_INPUT_FIELD = f"inputs[0] ({INPUT_NAME!r})"
_IMAGE_FIELD = f"inputs[0] ({IMAGE_NAME!r})"
_BOTH_INPUTS = f"{INPUT_NAME!r} (a raw tensor) or {IMAGE_NAME!r} (encoded PNG/JPEG files)"
_CONFIG_TYPES = {"UINT8": config_pb.TYPE_UINT8, "FP32": config_pb.TYPE_FP32}


def input_datatype(model: ServedModel) -> str:
    """The V2 datatype the artifact declares for raw input ("UINT8" or "FP32")."""
    return "UINT8" if model.spec.dtype == "uint8" else "FP32"


@dataclass(frozen=True)
class RequestedOutput:
    """One output the client asked for; `classification` > 0 selects the top-k strings."""

    name: str
    classification: int = 0


def _input_array(
    request: pb.ModelInferRequest,
    tensor: pb.ModelInferRequest.InferInputTensor,
    model: ServedModel,
    limits: Limits,
) -> np.ndarray:
    """The raw tensor of `tensor` (the request's only input, named INPUT_NAME), unchecked
    values, in its wire dtype."""
    field = _INPUT_FIELD
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


def _tensor_pixels(
    request: pb.ModelInferRequest,
    tensor: pb.ModelInferRequest.InferInputTensor,
    model: ServedModel,
    limits: Limits,
) -> np.ndarray:
    x = _input_array(request, tensor, model, limits)
    return check_pixels(x, model.spec, "inputs[0] (values)")


def prepare_inputs(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> PixelWork:
    """Check the request's inputs now; return the pixel work still to do (`server.decoding`),
    which produces (N, C, H, W) float32 in the model's pixel range.

    "input" (a raw tensor): the work reads and checks it, its cost estimated from the
    payload's size (the raw bytes, or the whole message for typed contents). "image"
    (encoded files): every header is read now and the limits checked; the work decodes.

    Raises (now, or from the work where noted):
        InvalidInput: not exactly one input named "input" or "image"; a wrong datatype,
            shape, byte or element count; an undecodable image header; from the work: NaN,
            values outside the pixel range, corrupt image data (messages name the field and
            the element).
        LimitExceeded: more than max_images_per_request images, an image side over
            max_image_side, images decoding to more than max_decoded_pixels pixels.
    """
    inputs = request.inputs
    if len(inputs) != 1:
        raise InvalidInput(f"inputs has {len(inputs)} tensors; send exactly one: {_BOTH_INPUTS}")
    tensor = inputs[0]
    name = tensor.name
    if name != INPUT_NAME:
        if name == IMAGE_NAME:
            return _prepare_images(request, tensor, model, limits)
        raise InvalidInput(f"inputs[0].name is {name!r}; expected {_BOTH_INPUTS}")
    raw = request.raw_input_contents
    size = len(raw[0]) if len(raw) == 1 else request.ByteSize()
    return PixelWork(
        estimate_seconds(tensor_bytes=size),
        lambda check: _tensor_pixels(request, tensor, model, limits),
    )


def decode_inputs(request: pb.ModelInferRequest, model: ServedModel, limits: Limits) -> np.ndarray:
    """The request's input as (N, C, H, W) float32 in the model's pixel range, at once:
    `prepare_inputs` and its work, in the calling thread.

    Raises:
        InvalidInput, LimitExceeded: as `prepare_inputs`.
    """
    return prepare_inputs(request, model, limits).produce(no_check)


_LENGTH = struct.Struct("<I")


def split_bytes_tensor(data: bytes, count: int, field: str) -> list[bytes]:
    """The `count` elements of a BYTES tensor in Triton's raw layout: each one a 4-byte
    little-endian length, then that many bytes, back to back.

    Raises:
        InvalidInput: a length prefix cut short, an element longer than what is left, or
            not exactly `count` elements; names `field`.
    """
    elements: list[bytes] = []
    offset, size = 0, len(data)
    while offset < size:
        if len(elements) == count:
            raise InvalidInput(
                f"{field} has {size - offset} bytes after its {count} elements; BYTES "
                "elements are each a 4-byte little-endian length, then that many bytes"
            )
        if size - offset < 4:
            raise InvalidInput(
                f"{field} ends inside the 4-byte length of element {len(elements)} "
                f"({size - offset} bytes left)"
            )
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if length > size - offset:
            raise InvalidInput(
                f"{field}: element {len(elements)} says {length} bytes, "
                f"{size - offset} bytes are left"
            )
        elements.append(data[offset : offset + length])
        offset += length
    if len(elements) != count:
        raise InvalidInput(f"{field} has {len(elements)} elements; the shape needs {count}")
    return elements


def _image_files(
    request: pb.ModelInferRequest, tensor: pb.ModelInferRequest.InferInputTensor, count: int
) -> list[bytes]:
    """The encoded files of the "image" input, from raw_input_contents or bytes_contents."""
    field = _IMAGE_FIELD
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
        return split_bytes_tensor(raw_contents[0], count, "raw_input_contents[0]")
    if not has_contents:
        raise InvalidInput(
            f"{field} has no data: set contents.bytes_contents or raw_input_contents"
        )
    contents = tensor.contents
    for other in _CONTENTS_FIELDS:
        if other != "bytes_contents" and len(getattr(contents, other)):
            raise InvalidInput(
                f"{field}.contents.{other} is set; datatype BYTES uses contents.bytes_contents"
            )
    files = list(contents.bytes_contents)
    if len(files) != count:
        raise InvalidInput(
            f"{field}.contents.bytes_contents has {len(files)} elements; the shape needs {count}"
        )
    return files


def _prepare_images(
    request: pb.ModelInferRequest,
    tensor: pb.ModelInferRequest.InferInputTensor,
    model: ServedModel,
    limits: Limits,
) -> PixelWork:
    """`prepare_inputs` for the "image" input: headers read and limits checked now, the
    pixels decoded by the work, one image at a time (as Classify's encoded images)."""
    field = _IMAGE_FIELD
    if tensor.datatype != "BYTES":
        raise InvalidInput(
            f"{field}.datatype is {tensor.datatype!r}; expected 'BYTES' (one PNG/JPEG file "
            f"per element; raw pixels go in an input named {INPUT_NAME!r})"
        )
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or shape[0] < 1 or shape[1:] not in ([], [1]):
        raise InvalidInput(
            f"{field}.shape is {shape}; expected [N] or [N, 1] with N >= 1 "
            "(one PNG/JPEG file per element)"
        )
    count = shape[0]
    max_images = limits.max_images_per_request
    if count > max_images:
        raise LimitExceeded(
            f"{field} has {count} images; max_images_per_request is {max_images} "
            "(CNN_MAX_IMAGES_PER_REQUEST)"
        )
    spec = model.spec
    headers = [
        read_encoded(data, spec, limits.max_image_side, f"{field}[{i}]")
        for i, data in enumerate(_image_files(request, tensor, count))
    ]
    pixels = sum(header.width * header.height for header in headers)
    check_decoded_pixels(pixels, count, limits.max_decoded_pixels)

    def produce(check: Check) -> np.ndarray:
        out = np.empty((count, *spec.shape), dtype=np.float32)
        for i, header in enumerate(headers):
            check()
            out[i] = decode_encoded(header, spec, f"{field}[{i}]")
        return out

    return PixelWork(estimate_seconds(images=count, pixels=pixels), produce)


_ALL_OUTPUTS = tuple(RequestedOutput(name) for name in OUTPUT_NAMES)
_ALL_REGRESSION_OUTPUTS = tuple(RequestedOutput(name) for name in REGRESSION_OUTPUT_NAMES)


def requested_outputs(request: pb.ModelInferRequest, model: ServedModel) -> list[RequestedOutput]:
    """Validated output requests (all outputs when none are requested).

    Raises:
        InvalidInput: unknown output name, duplicate, bad classification parameter.
    """
    regression = model.is_regression
    if not request.outputs:
        return list(_ALL_REGRESSION_OUTPUTS if regression else _ALL_OUTPUTS)
    names = REGRESSION_OUTPUT_NAMES if regression else OUTPUT_NAMES
    out: list[RequestedOutput] = []
    seen: set[str] = set()
    for i, item in enumerate(request.outputs):
        name = item.name
        if name not in names:
            kind = "regression model" if regression else "model"
            raise InvalidInput(
                f"outputs[{i}].name is {name!r}; the {kind} has outputs "
                f"{', '.join(map(repr, names))}"
            )
        if name in seen:
            raise InvalidInput(f"outputs[{i}].name {name!r} is requested twice")
        seen.add(name)
        k = 0
        parameters = item.parameters
        if "classification" in parameters:  # (indexing a missing key would insert it)
            if regression:
                raise InvalidInput(
                    f"outputs[{i}].parameters['classification']: model {model.name!r} is a "
                    f"regression model; it has no classes to rank (read {PREDICTION!r})"
                )
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
        elif item.name in (PROBABILITIES, PREDICTION):  # (a regression model's predictions)
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
            ),
            Tensor(name=IMAGE_NAME, datatype="BYTES", shape=[-1]),
        ],
        outputs=[Tensor(name=PREDICTION, datatype="FP32", shape=[-1, model.num_outputs])]
        if model.is_regression
        else [
            Tensor(name=PROBABILITIES, datatype="FP32", shape=[-1, model.num_classes]),
            Tensor(name=LABEL, datatype="INT64", shape=[-1, 1]),
        ],
    )


def encode_config(model: ServedModel, max_batch_size: int, delay_us: int) -> pb.ModelConfigResponse:
    spec = model.spec
    params = {
        "version": str(model.version),
        "task": model.task,
        "channels": str(spec.channels),
        "height": str(spec.height),
        "width": str(spec.width),
        "resize": spec.resize,
        "pixel_range": json.dumps(list(spec.pixel_range)),
        "mean": json.dumps(list(model.normalisation.mean)),
        "std": json.dumps(list(model.normalisation.std)),
    }
    if model.is_regression:
        params["target_names"] = json.dumps(list(model.target_names))
        params["prediction_units"] = "target units"
        outputs = [
            config_pb.ModelOutput(
                name=PREDICTION, data_type=config_pb.TYPE_FP32, dims=[model.num_outputs]
            )
        ]
    else:
        params["class_names"] = json.dumps(list(model.class_names))
        outputs = [
            config_pb.ModelOutput(
                name=PROBABILITIES, data_type=config_pb.TYPE_FP32, dims=[model.num_classes]
            ),
            config_pb.ModelOutput(name=LABEL, data_type=config_pb.TYPE_INT64, dims=[1]),
        ]
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
                optional=True,
            ),
            config_pb.ModelInput(
                name=IMAGE_NAME,
                data_type=config_pb.TYPE_STRING,
                dims=[1],
                reshape=config_pb.ModelTensorReshape(shape=[]),
                optional=True,
            ),
        ],
        output=outputs,
        dynamic_batching=config_pb.ModelDynamicBatching(max_queue_delay_microseconds=delay_us),
    )
    for key, value in params.items():
        config.parameters[key].string_value = value
    return pb.ModelConfigResponse(config=config)
