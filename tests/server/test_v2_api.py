"""Open Inference Protocol (KServe V2) against a real server, with unmodified tritonclient.

This module must never import `proto.inference` (tritonclient registers the same message
names); raw protobuf requests use tritonclient's own `service_pb2`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.server.models import TrainedArtifact, local_probabilities
from tests.server.serverproc import REPO_ROOT, ServerProcess


@pytest.fixture(scope="module")
def client(digits_server: ServerProcess):  # type: ignore[no-untyped-def]
    with tc.InferenceServerClient(digits_server.address) as c:
        yield c


@pytest.fixture(scope="module")
def raw_stub(digits_server: ServerProcess):  # type: ignore[no-untyped-def]
    with digits_server.channel() as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_server_live_ready_and_metadata(client) -> None:  # type: ignore[no-untyped-def]
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "cnn-service"
    assert "classification" in meta["extensions"]


def test_model_ready_and_unknown_model(client) -> None:  # type: ignore[no-untyped-def]
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "2")
    assert not client.is_model_ready("nope")


def test_repository_index_discovers_models(client) -> None:  # type: ignore[no-untyped-def]
    index = client.get_model_repository_index(as_json=True)
    assert index["models"] == [{"name": "digits", "version": "1", "state": "READY"}]


def test_model_metadata_tells_the_input_and_outputs(client) -> None:  # type: ignore[no-untyped-def]
    meta = client.get_model_metadata("digits", as_json=True)
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "input", "datatype": "UINT8", "shape": ["-1", "1", "8", "8"]},
        {"name": "image", "datatype": "BYTES", "shape": ["-1"]},
    ]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "probabilities": "FP32",
        "label": "INT64",
    }
    config = client.get_model_config("digits", as_json=True)["config"]
    assert json.loads(config["parameters"]["pixel_range"]["string_value"]) == [0.0, 16.0]


@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
def test_infer_matches_core_locally(
    client, digits_artifact: TrainedArtifact, datatype: str
) -> None:  # type: ignore[no-untyped-def]
    x = digits_artifact.data.x_test[:64]
    data = x.astype(np.uint8 if datatype == "UINT8" else np.float32)
    inp = tc.InferInput("input", list(x.shape), datatype)
    inp.set_data_from_numpy(data)
    result = client.infer("digits", [inp])
    expected = local_probabilities(digits_artifact.path, x)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label")[:, 0], expected.argmax(axis=1))
    assert result.get_response().model_version == "1"


def test_client_built_from_metadata_alone_gets_correct_predictions(  # type: ignore[no-untyped-def]
    client, digits_artifact: TrainedArtifact
) -> None:
    meta = client.get_model_metadata("digits", as_json=True)
    config = client.get_model_config("digits", as_json=True)["config"]
    (spec,) = [t for t in meta["inputs"] if t["name"] == "input"]  # raw pixels, not "image"
    shape = [int(d) for d in spec["shape"]]
    lo, hi = json.loads(config["parameters"]["pixel_range"]["string_value"])
    x = digits_artifact.data.x_test[:16]  # a client with images already in the model's range
    assert list(x.shape[1:]) == shape[1:] and lo <= x.min() and x.max() <= hi
    dtype = tc.triton_to_np_dtype(spec["datatype"])
    inp = tc.InferInput(spec["name"], [len(x), *shape[1:]], spec["datatype"])
    inp.set_data_from_numpy(x.astype(dtype))
    outputs = [tc.InferRequestedOutput(o["name"]) for o in meta["outputs"]]
    result = client.infer(meta["name"], [inp], outputs=outputs)
    predicted = result.as_numpy("label").reshape(-1)
    np.testing.assert_array_equal(predicted, local_probabilities(digits_artifact.path, x).argmax(1))
    assert (predicted == digits_artifact.data.y_test[:16]).mean() >= 0.75


def test_classification_extension_returns_top_k_strings(
    client, digits_artifact: TrainedArtifact
) -> None:  # type: ignore[no-untyped-def]
    x = digits_artifact.data.x_test[:4]
    inp = tc.InferInput("input", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x)
    result = client.infer(
        "digits", [inp], outputs=[tc.InferRequestedOutput("probabilities", class_count=3)]
    )
    top = result.as_numpy("probabilities")
    assert top.shape == (4, 3)
    expected = local_probabilities(digits_artifact.path, x)
    for row, strings in zip(expected, top, strict=True):
        prob, index, name = strings[0].decode().split(":")
        assert int(index) == row.argmax() and name == str(row.argmax())
        assert float(prob) == pytest.approx(row.max(), abs=1e-5)


@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
def test_typed_contents_are_accepted(
    raw_stub, digits_artifact: TrainedArtifact, datatype: str
) -> None:  # type: ignore[no-untyped-def]
    x = digits_artifact.data.x_test[:3]
    request = service_pb2.ModelInferRequest(model_name="digits", id="typed-1")
    tensor = request.inputs.add(name="input", datatype=datatype, shape=list(x.shape))
    if datatype == "UINT8":
        tensor.contents.uint_contents.extend(x.ravel().tolist())
    else:
        tensor.contents.fp32_contents.extend(x.ravel().astype(np.float32).tolist())
    response = raw_stub.ModelInfer(request, timeout=10)
    assert response.id == "typed-1"
    names = [o.name for o in response.outputs]
    probs = np.frombuffer(response.raw_output_contents[names.index("probabilities")], "<f4")
    np.testing.assert_allclose(
        probs.reshape(3, 10), local_probabilities(digits_artifact.path, x), atol=1e-6
    )


def test_statistics_count_inferences(client) -> None:  # type: ignore[no-untyped-def]
    stats = client.get_inference_statistics("digits", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) > 0
    assert int(stats["execution_count"]) > 0


@pytest.mark.parametrize(
    ("model", "version", "status", "needle"),
    [
        ("nope", "", "StatusCode.NOT_FOUND", "'nope' is not loaded"),
        ("digits", "9", "StatusCode.NOT_FOUND", "no loaded version 9"),
        ("digits", "x", "StatusCode.INVALID_ARGUMENT", "model_version must be"),
    ],
)
def test_infer_errors_have_status_and_message(client, model, version, status, needle) -> None:  # type: ignore[no-untyped-def]
    inp = tc.InferInput("input", [1, 1, 8, 8], "UINT8")
    inp.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.uint8))
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [inp], model_version=version)
    assert info.value.status() == status
    assert needle in info.value.message()


def test_unimplemented_rpc_is_unimplemented(raw_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        raw_stub.SystemSharedMemoryStatus(
            service_pb2.SystemSharedMemoryStatusRequest(), timeout=5
        )  # shared memory is not offered (RepositoryModelLoad is: see test_lifecycle_api)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


_DUMP = """
import json, sys
def dump(fd):
    out = {}
    def walk(m):
        out[m.full_name] = {f.name: [f.number, f.type, f.is_repeated,
                                     f.message_type.full_name if f.message_type else None]
                            for f in m.fields}
        for n in m.nested_types:
            walk(n)
    for m in fd.message_types_by_name.values():
        walk(m)
    for e in fd.enum_types_by_name.values():
        out[e.full_name] = {v.name: v.number for v in e.values}
    for s in fd.services_by_name.values():
        out[s.full_name] = {m.name: [m.input_type.full_name, m.output_type.full_name,
                                     m.client_streaming, m.server_streaming] for m in s.methods}
    return out
if sys.argv[1] == "ours":
    from proto.inference import grpc_service_pb2 as a, model_config_pb2 as b
else:
    from tritonclient.grpc import service_pb2 as a, model_config_pb2 as b
print(json.dumps({**dump(a.DESCRIPTOR), **dump(b.DESCRIPTOR)}))
"""


def _descriptors(which: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _DUMP, which],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_inference_protos_are_wire_compatible_with_tritonclient() -> None:
    """Every message, field (name, number, type), enum value and RPC we define exists
    identically in tritonclient's copy of the published protocol (run in subprocesses)."""
    ours, theirs = _descriptors("ours"), _descriptors("triton")
    for name, members in ours.items():
        assert name in theirs, f"{name} is not in the published protocol"
        for member, desc in members.items():
            assert theirs[name].get(member) == desc, (
                f"{name}.{member}: {desc} != {theirs[name].get(member)}"
            )
