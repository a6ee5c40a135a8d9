"""`server.codec_v2`'s fast paths against the obvious computation: typed and raw contents,
their errors, output requests and classification strings. Never imports tritonclient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.artifacts import InputSpec
from core.datasets import Normalisation
from proto.inference import grpc_service_pb2 as pb
from server import codec_v2
from server.codec import Limits
from server.errors import InvalidInput
from server.model import ServedModel

LIMITS = Limits(max_images_per_request=256, max_image_side=4096)
MODEL = ServedModel(
    name="m",
    version=2,
    spec=InputSpec(1, 8, 8, "uint8", (0.0, 200.0)),
    normalisation=Normalisation(mean=[0.0], std=[1.0]),
    class_names=tuple(f"c{i}" for i in range(10)),
    meta={},
    network=None,
    batcher=None,  # type: ignore[arg-type]
)
PREFIX = "inputs[0] ('input')"


def _request(
    datatype: str, n: int = 1, values: list | None = None, raw: bytes | None = None
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest()
    tensor = request.inputs.add(name="input", datatype=datatype, shape=[n, 1, 8, 8])
    if raw is not None:
        request.raw_input_contents.append(raw)
    else:
        field = "uint_contents" if datatype == "UINT8" else "fp32_contents"
        getattr(tensor.contents, field).extend(values or [])
    return request


def _error(request: pb.ModelInferRequest) -> str:
    with pytest.raises(InvalidInput) as info:
        codec_v2.decode_inputs(request, MODEL, LIMITS)
    return str(info.value)


@pytest.mark.parametrize("hi", [127, 200])  # all one-byte varints, then some two-byte ones
@pytest.mark.parametrize("n", [1, 3, 100])
def test_typed_and_raw_contents_decode_to_the_pixels_as_float32(n: int, hi: int) -> None:
    rng = np.random.default_rng(1000 * n + hi)
    u8 = rng.integers(0, hi + 1, size=(n, 1, 8, 8)).astype(np.uint8)
    f32 = (u8 / 2).astype(np.float32)
    for request, want in [
        (_request("UINT8", n, values=u8.ravel().tolist()), u8),
        (_request("UINT8", n, raw=u8.tobytes()), u8),
        (_request("FP32", n, values=f32.ravel().tolist()), f32),
        (_request("FP32", n, raw=f32.tobytes()), f32),
    ]:
        got = codec_v2.decode_inputs(request, MODEL, LIMITS)
        assert got.dtype == np.float32 and got.shape == (n, 1, 8, 8)
        assert np.array_equal(got, want.astype(np.float32))


def test_contents_with_an_unknown_field_take_the_slow_path_to_the_same_pixels() -> None:
    odd = _request("FP32", values=[1.0] * 64)
    odd.inputs[0].contents.MergeFromString(b"\xa8\x06\x01")  # an unknown field
    assert np.array_equal(codec_v2.decode_inputs(odd, MODEL, LIMITS), np.ones((1, 1, 8, 8)))


def test_uint8_contents_above_255_name_the_field_and_the_first_value() -> None:
    values = [0] * 64
    values[5], values[9] = 300, 256
    assert _error(_request("UINT8", values=values)) == (
        f"{PREFIX}.contents.uint_contents has value 300 > 255 (UINT8)"
    )


def test_fp32_contents_must_be_finite_and_in_the_pixel_range() -> None:
    values = [0.0] * 64
    values[9] = math.nan
    assert _error(_request("FP32", values=values)) == (
        "inputs[0] (values) contains NaN or infinity (first at flat element 9); "
        "pixel values must be finite"
    )
    values[9] = 200.5
    assert _error(_request("FP32", values=values)).startswith(
        "inputs[0] (values) has values in [0, "
    )


def test_contents_of_another_datatype_are_rejected_naming_both_fields() -> None:
    both = _request("FP32", values=[0.0] * 64)
    both.inputs[0].contents.int64_contents.append(1)
    assert _error(both) == (
        f"{PREFIX}.contents.int64_contents is set; datatype FP32 uses contents.fp32_contents"
    )
    wrong = _request("FP32", values=[])
    wrong.inputs[0].contents.uint_contents.extend([1] * 64)
    assert _error(wrong) == (
        f"{PREFIX}.contents.uint_contents is set; datatype FP32 uses contents.fp32_contents"
    )


def test_requested_outputs_read_the_classification_parameter_without_adding_one() -> None:
    request = pb.ModelInferRequest()
    request.outputs.add(name="label")
    out = request.outputs.add(name="probabilities")
    out.parameters["classification"].int64_param = 30
    out.parameters["binary_data"].bool_param = True
    before = request.SerializeToString()
    got = codec_v2.requested_outputs(request, MODEL)
    assert [(o.name, o.classification) for o in got] == [("label", 0), ("probabilities", 10)]
    assert request.SerializeToString() == before  # looking the parameter up did not add one


def test_without_requested_outputs_both_are_returned() -> None:
    got = codec_v2.requested_outputs(pb.ModelInferRequest(), MODEL)
    assert [o.name for o in got] == ["probabilities", "label"]


def test_classification_strings_are_the_stable_top_k_with_nan_last() -> None:
    p = np.random.default_rng(0).integers(0, 4, size=(3, 10)).astype(np.float32) / 4
    p[1, 4] = math.nan
    response = codec_v2.encode_infer_response(
        pb.ModelInferRequest(), MODEL, p, [codec_v2.RequestedOutput("p", 4)]
    )
    order = np.argsort(-p, axis=1, kind="stable")[:, :4]
    strings = [f"{p[r, c]:f}:{c}:c{c}".encode() for r in range(3) for c in order[r]]
    want = b"".join(len(s).to_bytes(4, "little") + s for s in strings)
    assert list(response.outputs[0].shape) == [3, 4]
    assert response.raw_output_contents[0] == want
