"""Fuzzing both APIs with malformed requests: every one must get a non-OK status with a
message naming the problem, and the server must keep answering correctly afterwards.

Each generated request starts from a valid one and applies one or more defects (hypothesis
picks which and with what values); raw garbage bytes are sent too.
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2, service_pb2_grpc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, local_probabilities
from tests.server.serverproc import ServerProcess

EXAMPLES = 300
EXPECTED_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VALID = np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8) % 17


@pytest.fixture(scope="module")
def channel(digits_server: ServerProcess):  # type: ignore[no-untyped-def]
    with digits_server.channel() as ch:
        yield ch


def _assert_rejected(call, request, needles: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    code, details = info.value.code(), info.value.details() or ""
    assert code in EXPECTED_CODES, f"{code}: {details!r} for {request!r:.300}"
    assert len(details) > 15, details
    assert any(n in details for n in needles), f"{details!r} names none of {needles}"


# --- cnn.v1.Classifier ---------------------------------------------------------------------


def _good_tensor() -> pb.Tensor:
    return pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1, 8, 8], data=VALID.tobytes())


bad_dims = st.lists(st.integers(-3, 12), min_size=0, max_size=6).filter(
    lambda s: s not in ([1, 8, 8], [8, 8])
)
bad_values = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 16.5, 1e30, -1e-3])


@st.composite
def classify_defects(draw):  # type: ignore[no-untyped-def]
    """A ClassifyRequest with at least one defect, and words the error must contain."""
    n = draw(st.integers(1, 3))
    request = pb.ClassifyRequest(
        model="digits", images=[pb.Image(tensor=_good_tensor()) for _ in range(n)]
    )
    i = draw(st.integers(0, n - 1))
    image = request.images[i]
    kind = draw(
        st.sampled_from(
            [
                "model",
                "version",
                "dtype",
                "shape",
                "bytes",
                "float",
                "uint8",
                "encoded",
                "both",
                "none",
                "empty-image",
                "too-many",
                "batch-shape",
            ]
        )
    )
    if kind == "model":
        request.model = draw(st.text(max_size=20).filter(lambda s: s != "digits"))
        return request, ("model",)
    if kind == "version":
        request.version = draw(st.integers(-(2**62), 2**62).filter(lambda v: v not in (0, 1)))
        return request, ("version",)
    if kind == "dtype":
        image.tensor.dtype = draw(st.integers(0, 2**31 - 1).filter(lambda v: v not in (1, 2)))
        return request, ("dtype",)
    if kind == "shape":
        del image.tensor.shape[:]
        image.tensor.shape.extend(draw(bad_dims))
        return request, ("shape",)
    if kind == "bytes":
        image.tensor.data = draw(st.binary(max_size=200).filter(lambda b: len(b) != 64))
        return request, ("bytes",)
    if kind == "float":
        values = np.zeros(64, "<f4")
        values[draw(st.integers(0, 63))] = draw(bad_values)
        image.tensor.CopyFrom(
            pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[8, 8], data=values.tobytes())
        )
        return request, ("NaN", "pixel range")
    if kind == "uint8":
        values = np.zeros(64, np.uint8)
        values[draw(st.integers(0, 63))] = draw(st.integers(17, 255))
        image.tensor.data = values.tobytes()
        return request, ("pixel range",)
    if kind == "encoded":
        image.encoded = draw(st.binary(max_size=300))
        return request, ("encoded",)
    if kind == "both":
        request.batch.CopyFrom(
            pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1, 1, 8, 8], data=VALID.tobytes())
        )
        return request, ("either",)
    if kind == "none":
        del request.images[:]
        return request, ("no images",)
    if kind == "empty-image":
        image.Clear()
        return request, ("is empty",)
    if kind == "too-many":
        request.images.extend([pb.Image(tensor=_good_tensor())] * draw(st.integers(257, 400)))
        return request, ("max_images_per_request",)
    del request.images[:]
    dims = draw(
        st.lists(st.integers(-2, 9), min_size=0, max_size=5).filter(
            lambda s: len(s) != 4 or s[1:] != [1, 8, 8] or s[0] < 1
        )
    )
    count = max(0, int(np.prod(dims))) if dims and all(d > 0 for d in dims) else 0
    request.batch.CopyFrom(
        pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=dims, data=bytes(min(count, 10**6)))
    )
    return request, ("batch",)


@FUZZ_SETTINGS
@given(case=classify_defects())
def _fuzz_classify(stub, case) -> None:  # type: ignore[no-untyped-def]
    request, needles = case
    _assert_rejected(stub.Classify, request, needles)


def test_fuzz_classifier_then_still_correct(channel, digits_artifact: TrainedArtifact) -> None:  # type: ignore[no-untyped-def]
    stub = pb_grpc.ClassifierStub(channel)
    _fuzz_classify(stub)
    x = digits_artifact.data.x_test[:8]
    response = stub.Classify(
        pb.ClassifyRequest(
            model="digits",
            batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
            top_k=1,
        ),
        timeout=10,
    )
    expected = local_probabilities(digits_artifact.path, x).argmax(1)
    assert [r.class_indices[0] for r in response.results] == expected.tolist()


# --- inference.GRPCInferenceService (tritonclient's stubs) -------------------------------


def _good_infer() -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="input", datatype="UINT8", shape=[1, 1, 8, 8])
    request.raw_input_contents.append(VALID.tobytes())
    return request


@st.composite
def infer_defects(draw):  # type: ignore[no-untyped-def]
    request = _good_infer()
    tensor = request.inputs[0]
    kind = draw(
        st.sampled_from(
            [
                "model",
                "version",
                "no-input",
                "two-inputs",
                "name",
                "datatype",
                "shape",
                "raw-len",
                "raw-count",
                "both",
                "typed-count",
                "typed-field",
                "nan",
                "uint-range",
                "no-data",
                "output-name",
                "output-dup",
                "classification",
                "batch-limit",
                "image-bytes",
            ]
        )
    )
    if kind == "model":
        request.model_name = draw(st.text(max_size=20).filter(lambda s: s != "digits"))
        return request, ("model",)
    if kind == "version":
        request.model_version = draw(
            st.text(min_size=1, max_size=8).filter(lambda s: s.strip() not in ("", "1"))
        )
        return request, ("version",)
    if kind == "no-input":
        del request.inputs[:]
        return request, ("inputs",)
    if kind == "two-inputs":
        request.inputs.add().CopyFrom(tensor)
        return request, ("inputs",)
    if kind == "name":
        tensor.name = draw(st.text(max_size=10).filter(lambda s: s not in ("input", "image")))
        return request, ("name",)
    if kind == "datatype":
        tensor.datatype = draw(
            st.sampled_from(["FP16", "FP64", "INT8", "INT32", "BYTES", "BOOL", "", "fp32"])
            | st.text(max_size=6)
        )
        if tensor.datatype in ("UINT8", "FP32"):
            tensor.datatype = "BF16"
        return request, ("datatype",)
    if kind == "shape":
        del tensor.shape[:]
        tensor.shape.extend(
            draw(
                st.lists(st.integers(-(2**40), 2**40), max_size=6).filter(
                    lambda s: s != [1, 1, 8, 8]
                )
            )
        )
        return request, ("shape", "max_images_per_request")
    if kind == "raw-len":
        request.raw_input_contents[0] = draw(st.binary(max_size=300).filter(lambda b: len(b) != 64))
        return request, ("bytes",)
    if kind == "raw-count":
        request.raw_input_contents.append(b"")
        return request, ("raw_input_contents",)
    if kind == "both":
        tensor.contents.uint_contents.extend([0] * 64)
        return request, ("contents",)
    if kind in ("typed-count", "typed-field", "nan", "uint-range"):
        del request.raw_input_contents[:]
        if kind == "typed-count":
            tensor.contents.uint_contents.extend(
                [1] * draw(st.integers(0, 200).filter(lambda n: n != 64))
            )
            return request, ("elements",)
        if kind == "typed-field":
            tensor.contents.fp32_contents.extend([1.0] * 64)
            return request, ("contents",)
        if kind == "nan":
            tensor.datatype = "FP32"
            values = [0.0] * 64
            values[draw(st.integers(0, 63))] = draw(bad_values)
            tensor.contents.fp32_contents.extend(values)
            return request, ("NaN", "pixel range")
        values = [0] * 64
        values[draw(st.integers(0, 63))] = draw(st.integers(17, 2**32 - 1))
        tensor.contents.uint_contents.extend(values)
        return request, ("pixel range", "> 255")
    if kind == "no-data":
        del request.raw_input_contents[:]
        return request, ("no data",)
    if kind == "image-bytes":  # the encoded-image input with garbage: files or their layout
        tensor.name, tensor.datatype = "image", "BYTES"
        del tensor.shape[:]
        tensor.shape.append(1)
        garbage = draw(st.binary(max_size=64))
        framed = draw(st.booleans())  # a well-framed garbage file, or a broken frame
        request.raw_input_contents[0] = (
            len(garbage).to_bytes(4, "little") + garbage if framed else garbage
        )
        return request, ("inputs[0] ('image')[0]", "raw_input_contents[0]")
    if kind == "output-name":
        request.outputs.add(
            name=draw(st.text(max_size=12).filter(lambda s: s not in ("probabilities", "label")))
        )
        return request, ("outputs",)
    if kind == "output-dup":
        request.outputs.add(name="label")
        request.outputs.add(name="label")
        return request, ("twice",)
    if kind == "classification":
        out = request.outputs.add(name="probabilities")
        if draw(st.booleans()):
            out.parameters["classification"].int64_param = draw(st.integers(-(2**40), 0))
        else:
            out.parameters["classification"].string_param = draw(st.text(max_size=5))
        return request, ("classification",)
    tensor.shape[0] = draw(st.integers(257, 2**20))
    return request, ("max_images_per_request",)


@FUZZ_SETTINGS
@given(case=infer_defects())
def _fuzz_infer(stub, case) -> None:  # type: ignore[no-untyped-def]
    request, needles = case
    _assert_rejected(stub.ModelInfer, request, needles)


def test_fuzz_v2_then_still_correct(
    channel, digits_server: ServerProcess, digits_artifact: TrainedArtifact
) -> None:  # type: ignore[no-untyped-def]
    _fuzz_infer(service_pb2_grpc.GRPCInferenceServiceStub(channel))
    x = digits_artifact.data.x_test[:8]
    with tc.InferenceServerClient(digits_server.address) as client:
        inp = tc.InferInput("input", list(x.shape), "UINT8")
        inp.set_data_from_numpy(x)
        probs = client.infer("digits", [inp]).as_numpy("probabilities")
    np.testing.assert_allclose(probs, local_probabilities(digits_artifact.path, x), atol=1e-6)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(payload=st.binary(max_size=400))
def _fuzz_garbage(channel, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    for method in ("/cnn.v1.Classifier/Classify", "/inference.GRPCInferenceService/ModelInfer"):
        call = channel.unary_unary(method)  # raw bytes in and out
        with pytest.raises(grpc.RpcError) as info:
            call(payload, timeout=10)
        code, details = info.value.code(), info.value.details() or ""
        assert code in EXPECTED_CODES, (code, details)
        if code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid message" in details:
            assert method in details, details  # bytes that are not the message type
        assert details


def test_fuzz_garbage_bytes_then_still_live(channel, digits_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    _fuzz_garbage(channel)
    with tc.InferenceServerClient(digits_server.address) as client:
        assert client.is_server_ready() and client.is_model_ready("digits")
