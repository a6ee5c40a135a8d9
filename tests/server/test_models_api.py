"""`cnn.v1.Models` against a real server process: ONNX export answers as Classify does (in ONNX
Runtime), imports are served, summarised and refused by name, and a refusal writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
from onnx import helper

from cnn_client import CnnClient, CnnClientError
from proto.cnn.v1 import models_pb2 as pb
from proto.cnn.v1 import models_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact
from tests.server.serverproc import ServerProcess
from tests.support.limits import EVENT_LIMIT_S
from tests.support.onnx_graphs import (
    PROBABILITY_ATOL,
    graph_model,
    pixels,
    run_onnx,
    weights,
)
from tests.support.polling import wait_for

node = helper.make_node


@pytest.fixture(scope="module")
def client(digits_server: ServerProcess):  # type: ignore[no-untyped-def]
    with CnnClient(digits_server.address, timeout=EVENT_LIMIT_S) as c:
        yield c


def _served_probabilities(client: CnnClient, name: str, version: int, x: np.ndarray) -> np.ndarray:
    """Classify's probabilities of every class, in class order, for the batch ``x``."""
    k = len(client.get_model(name, version).class_names)
    result = client.classify_batch(x, model=name, version=version, top_k=k)
    out = np.zeros((len(result.results), k))
    for row, r in zip(out, result.results, strict=True):
        row[r.class_indices] = r.probabilities
    return out


def _wait_loaded(client: CnnClient, name: str, version: int) -> None:
    wait_for(
        lambda: version in client.list_models().get(name, []),
        EVENT_LIMIT_S,
        what=f"{name} version {version} to be served",
    )


def _small_cnn() -> bytes:
    """A torch-style graph built with onnx.helper: Conv + BN + Relu + MaxPool + Flatten + Gemm
    (transB) + Softmax, input (N, 1, 8, 8) in 0..1."""
    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1], dilations=[1, 1]),
        node("BatchNormalization", ["c", "g", "beta", "mu", "var"], ["n"], name="bn1"),
        node("Relu", ["n"], ["r"], name="relu1"),
        node("MaxPool", ["r"], ["p"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p"], ["f"], name="flatten"),
        node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    inits = {
        "w": weights((4, 1, 3, 3), 1),
        "b": weights((4,), 2),
        "g": weights((4,), 3) + 1,
        "beta": weights((4,), 4),
        "mu": weights((4,), 5),
        "var": np.linspace(0.5, 1.5, 4, dtype=np.float32),
        "fc_w": weights((3, 4 * 4 * 4), 6),
        "fc_b": weights((3,), 7),
    }
    return graph_model(nodes, inits, ["batch", 1, 8, 8], "probs")


def test_an_export_in_onnx_runtime_equals_classify(
    client: CnnClient, digits_artifact: TrainedArtifact
) -> None:
    exported = client.export_model("digits")
    assert exported.version == 1 and exported.opset == 17
    assert json.loads(exported.metadata["cnn.class_names"]) == [str(i) for i in range(10)]
    assert json.loads(exported.metadata["cnn.input"])["pixel_range"] == [0.0, 16.0]
    x = digits_artifact.data.x_test[:24].astype(np.float32)  # raw pixels, 0..16
    (_, probabilities) = run_onnx(exported.data, x)
    np.testing.assert_allclose(
        probabilities, _served_probabilities(client, "digits", 1, x), atol=PROBABILITY_ATOL
    )


def test_export_streams_a_header_then_chunks(digits_server: ServerProcess) -> None:
    with digits_server.channel() as channel:
        replies = list(
            pb_grpc.ModelsStub(channel).ExportModel(
                pb.ExportModelRequest(model="digits", version=1), timeout=EVENT_LIMIT_S
            )
        )
    assert replies[0].WhichOneof("part") == "header"
    assert {r.WhichOneof("part") for r in replies[1:]} == {"chunk"}
    assert sum(len(r.chunk) for r in replies[1:]) == replies[0].header.size_bytes


def test_exporting_an_unknown_model_or_version_is_not_found(client: CnnClient) -> None:
    with pytest.raises(CnnClientError) as caught:
        client.export_model("nope")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND and "'nope'" in str(caught.value)
    with pytest.raises(CnnClientError) as caught:
        client.export_model("digits", 7)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert "no version 7 (published: 1" in str(caught.value)


def test_an_imported_graph_is_served_as_onnx_runtime_answers(client: CnnClient) -> None:
    data = _small_cnn()
    imported = client.import_model(data, "helper-cnn", class_names=["a", "b", "c"])
    assert (imported.name, imported.version) == ("helper-cnn", 1)
    assert imported.input_shape == (1, 8, 8) and imported.pixel_range == (0.0, 1.0)
    assert [layer["type"] for layer in imported.architecture] == [
        "conv2d",
        "batchnorm2d",
        "relu",
        "maxpool2d",
        "flatten",
        "dense",
    ]
    _wait_loaded(client, "helper-cnn", 1)
    x = pixels((1, 8, 8), n=9, hi=1.0)
    (expected,) = run_onnx(data, x)
    np.testing.assert_allclose(
        _served_probabilities(client, "helper-cnn", 1, x), expected, atol=PROBABILITY_ATOL
    )


def test_an_imported_model_is_summarised_with_receptive_fields(client: CnnClient) -> None:
    client.import_model(_small_cnn(), "summarised")
    _wait_loaded(client, "summarised", 1)
    info = client.get_model("summarised", 1)
    assert info.class_names == ["0", "1", "2"]
    assert [layer.type for layer in info.layers][:4] == [
        "conv2d",
        "batchnorm2d",
        "relu",
        "maxpool2d",
    ]
    # conv 3x3: 3 px; batch norm and relu keep it; pool 2x2 after a step of 1: 3 + 1 = 4
    assert [layer.receptive_field for layer in info.layers[:4]] == [(3, 3), (3, 3), (3, 3), (4, 4)]
    assert info.layers[3].jump == (2, 2)
    assert info.layers[-1].receptive_field is None  # dense sees the whole input


def test_export_then_import_serves_the_same_answers(
    client: CnnClient, digits_artifact: TrainedArtifact
) -> None:
    exported = client.export_model("digits", 1)
    imported = client.import_model(exported.data, "digits-copy")
    assert imported.pixel_range == (0.0, 16.0)
    _wait_loaded(client, "digits-copy", imported.version)
    x = digits_artifact.data.x_test[:16]
    np.testing.assert_allclose(
        _served_probabilities(client, "digits-copy", imported.version, x),
        _served_probabilities(client, "digits", 1, x),
        atol=PROBABILITY_ATOL,
    )


def test_a_refused_import_names_the_node_and_writes_nothing(
    client: CnnClient, digits_server: ServerProcess
) -> None:
    nodes = [
        node("Elu", ["x"], ["e"], name="odd-activation"),
        node("Flatten", ["e"], ["f"], name="flatten"),
        node("Gemm", ["f", "w"], ["y"], name="fc"),
    ]
    data = graph_model(nodes, {"w": weights((64, 3))}, ["N", 1, 8, 8], "y")
    before = sorted(
        p.relative_to(digits_server.models_dir) for p in digits_server.models_dir.rglob("*")
    )
    with pytest.raises(CnnClientError) as caught:
        client.import_model(data, "refused")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "node 'odd-activation' (Elu): unsupported op" in str(caught.value)
    after = sorted(
        p.relative_to(digits_server.models_dir) for p in digits_server.models_dir.rglob("*")
    )
    assert after == before


def test_import_header_errors_name_the_field(digits_server: ServerProcess) -> None:
    with digits_server.channel() as channel:
        stub = pb_grpc.ModelsStub(channel)

        def call(*messages: pb.ImportModelRequest) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as caught:
                stub.ImportModel(iter(messages), timeout=EVENT_LIMIT_S)
            return caught.value

        err = call(pb.ImportModelRequest(chunk=b"x"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "header" in err.details()
        err = call(pb.ImportModelRequest(header=pb.ImportHeader(name=".hidden")))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "header.name" in err.details()
        err = call(pb.ImportModelRequest(header=pb.ImportHeader(name="m", pixel_range=[1, 0])))
        assert "header.pixel_range" in err.details()
        err = call(
            pb.ImportModelRequest(header=pb.ImportHeader(name="m", size_bytes=1 << 40)),
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "CNN_MAX_IMPORT_BYTES" in err.details()
        err = call(
            pb.ImportModelRequest(header=pb.ImportHeader(name="m", sha256="00" * 32)),
            pb.ImportModelRequest(chunk=_small_cnn()),
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in err.details()
    assert not (digits_server.models_dir / "m").exists()


def test_an_import_over_the_limit_is_refused_while_streaming(
    server_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    server = server_factory(models, {"CNN_MAX_IMPORT_BYTES": "1024"})
    data = _small_cnn()
    assert len(data) > 1024
    with server.channel() as channel:
        messages = [
            pb.ImportModelRequest(header=pb.ImportHeader(name="big")),
            *(pb.ImportModelRequest(chunk=data[i : i + 500]) for i in range(0, len(data), 500)),
        ]
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ModelsStub(channel).ImportModel(iter(messages), timeout=EVENT_LIMIT_S)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "CNN_MAX_IMPORT_BYTES=1,024" in caught.value.details()
    assert not any(models.iterdir())


def test_the_models_service_has_health_and_reflection(digits_server: ServerProcess) -> None:
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    assert digits_server.health("cnn.v1.Models") == health_pb2.HealthCheckResponse.SERVING
    with digits_server.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        (reply,) = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=EVENT_LIMIT_S,
        )
    assert "cnn.v1.Models" in {s.name for s in reply.list_services_response.service}
