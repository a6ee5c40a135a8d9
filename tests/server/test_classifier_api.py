"""The own API (cnn.v1.Classifier), health and reflection against a real server process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cnn_client import CnnClient
from core.artifacts import EVALUATION_JSON, read_evaluation
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, local_probabilities, publish_copy
from tests.server.serverproc import ServerProcess
from tests.support.images import encode_image


@pytest.fixture(scope="module")
def stub(digits_server: ServerProcess):  # type: ignore[no-untyped-def]
    with digits_server.channel() as channel:
        yield pb_grpc.ClassifierStub(channel)


def _tensor(x: np.ndarray) -> pb.Tensor:
    dtype = pb.DATA_TYPE_UINT8 if x.dtype == np.uint8 else pb.DATA_TYPE_FLOAT32
    return pb.Tensor(
        dtype=dtype, shape=list(x.shape), data=x.astype(x.dtype.newbyteorder("<")).tobytes()
    )


def test_classify_batch_tensor_matches_core_locally(stub, digits_artifact: TrainedArtifact) -> None:  # type: ignore[no-untyped-def]
    x = digits_artifact.data.x_test[:32]
    expected = local_probabilities(digits_artifact.path, x)
    response = stub.Classify(
        pb.ClassifyRequest(model="digits", batch=_tensor(x), top_k=3), timeout=10
    )
    assert response.model == "digits" and response.version == 1
    assert len(response.results) == 32
    for row, result in zip(expected, response.results, strict=True):
        assert list(result.class_indices) == list(np.argsort(-row, kind="stable")[:3])
        np.testing.assert_allclose(result.probabilities, row[list(result.class_indices)], atol=1e-6)
        assert list(result.class_names) == [str(i) for i in result.class_indices]


def test_classify_per_image_uint8_float32_and_png_agree(
    stub, digits_artifact: TrainedArtifact
) -> None:  # type: ignore[no-untyped-def]
    image = digits_artifact.data.x_test[5]  # (1, 8, 8) uint8 in 0..16
    png = encode_image((image[0].astype(np.float32) * 255 / 16).round().astype(np.uint8))
    request = pb.ClassifyRequest(
        model="digits",
        version=1,
        images=[
            pb.Image(tensor=_tensor(image)),
            pb.Image(tensor=_tensor(image[0].astype(np.float32))),  # (H, W) form
            pb.Image(encoded=png),
        ],
        top_k=10,
    )
    results = stub.Classify(request, timeout=10).results
    expected = local_probabilities(digits_artifact.path, image[None])[0]
    for result in results[:2]:
        np.testing.assert_allclose(
            np.asarray(result.probabilities), expected[list(result.class_indices)], atol=1e-6
        )
    assert results[2].class_indices[0] == results[0].class_indices[0]


def test_top_k_defaults_to_5_and_is_clamped(stub, digits_artifact: TrainedArtifact) -> None:  # type: ignore[no-untyped-def]
    x = digits_artifact.data.x_test[:1]
    default = stub.Classify(pb.ClassifyRequest(model="digits", batch=_tensor(x)), timeout=10)
    clamped = stub.Classify(
        pb.ClassifyRequest(model="digits", batch=_tensor(x), top_k=99), timeout=10
    )
    assert len(default.results[0].class_indices) == 5
    assert len(clamped.results[0].class_indices) == 10
    assert sum(clamped.results[0].probabilities) == pytest.approx(1.0, abs=1e-5)


def test_list_and_get_model(stub) -> None:  # type: ignore[no-untyped-def]
    listed = stub.ListModels(pb.ListModelsRequest(), timeout=5)
    assert [(m.name, list(m.versions), m.default_version) for m in listed.models] == [
        ("digits", [1], 1)
    ]
    info = stub.GetModel(pb.GetModelRequest(model="digits"), timeout=5)
    assert (info.input.channels, info.input.height, info.input.width) == (1, 8, 8)
    assert (info.input.pixel_min, info.input.pixel_max) == (0.0, 16.0)
    assert list(info.class_names) == [str(i) for i in range(10)]
    assert [layer.type for layer in info.layers] == [
        "conv2d",
        "relu",
        "maxpool2d",
        "flatten",
        "dense",
    ]
    assert list(info.layers[0].receptive_field) == [3, 3]
    assert info.layers[4].global_receptive_field
    assert info.total_parameters == 1370


def test_get_model_returns_the_evaluation_report_stored_with_the_version(
    digits_server: ServerProcess, digits_artifact: TrainedArtifact
) -> None:
    stored = read_evaluation(digits_artifact.path)
    y_test = digits_artifact.data.y_test
    assert stored is not None and y_test is not None and stored.samples == len(y_test) == 359
    with CnnClient(digits_server.address) as client:
        info = client.get_model("digits")
    assert info.evaluation == stored
    assert info.metrics["test_accuracy"] == pytest.approx(stored.accuracy)


def test_get_model_of_a_version_without_report_has_no_evaluation(
    server_factory, digits_artifact: TrainedArtifact, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bare = tmp_path / "bare"
    shutil.copytree(digits_artifact.path, bare)
    (bare / EVALUATION_JSON).unlink()
    publish_copy(tmp_path / "models", "digits", bare)
    server = server_factory(tmp_path / "models")
    with server.channel() as channel:
        info = pb_grpc.ClassifierStub(channel).GetModel(
            pb.GetModelRequest(model="digits"), timeout=10
        )
    assert not info.HasField("evaluation")
    assert info.metrics["test_accuracy"] > 0
    assert "conv2d" in info.summary_text
    assert json.loads(info.architecture_json)[0]["type"] == "conv2d"
    assert info.dataset == "digits"
    assert len(info.weights_sha256) == 64


@pytest.mark.parametrize(
    ("request_kwargs", "code", "needle"),
    [
        ({"model": "nope"}, grpc.StatusCode.NOT_FOUND, "'nope' is not loaded"),
        ({"model": "digits", "version": 7}, grpc.StatusCode.NOT_FOUND, "no loaded version 7"),
        ({"model": ""}, grpc.StatusCode.INVALID_ARGUMENT, "model name is required"),
        ({"model": "digits", "version": -1}, grpc.StatusCode.INVALID_ARGUMENT, "version is -1"),
    ],
)
def test_model_resolution_errors(stub, request_kwargs, code, needle) -> None:  # type: ignore[no-untyped-def]
    x = np.zeros((1, 1, 8, 8), np.uint8)
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(pb.ClassifyRequest(batch=_tensor(x), **request_kwargs), timeout=5)
    assert info.value.code() == code
    assert needle in info.value.details()


@pytest.mark.parametrize(
    ("bad_request", "code", "needle"),
    [
        (pb.ClassifyRequest(model="digits"), grpc.StatusCode.INVALID_ARGUMENT, "no images"),
        (
            pb.ClassifyRequest(
                model="digits",
                batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1, 1, 8, 7], data=bytes(56)),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "batch has shape (1, 1, 8, 7), the model expects (N, 1, 8, 8)",
        ),
        (
            pb.ClassifyRequest(
                model="digits",
                batch=pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 1, 8, 8], data=bytes(64)),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "batch.data has 64 bytes; shape (1, 1, 8, 8) of float32 needs 256 bytes",
        ),
        (
            pb.ClassifyRequest(
                model="digits", images=[pb.Image(tensor=pb.Tensor(shape=[8, 8], data=bytes(64)))]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "images[0].tensor.dtype is DATA_TYPE_UNSPECIFIED",
        ),
        (
            pb.ClassifyRequest(model="digits", images=[pb.Image(encoded=b"\x89PNG garbage")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "images[0].encoded could not be decoded",
        ),
        (
            pb.ClassifyRequest(model="digits", images=[pb.Image()]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "images[0] is empty",
        ),
        (
            pb.ClassifyRequest(
                model="digits",
                images=[
                    pb.Image(
                        tensor=pb.Tensor(
                            dtype=pb.DATA_TYPE_FLOAT32,
                            shape=[8, 8],
                            data=np.full(64, np.nan, "<f4").tobytes(),
                        )
                    )
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "images[0].tensor contains NaN or infinity",
        ),
        (
            pb.ClassifyRequest(
                model="digits",
                images=[
                    pb.Image(
                        tensor=pb.Tensor(
                            dtype=pb.DATA_TYPE_UINT8, shape=[8, 8], data=bytes([200]) * 64
                        )
                    )
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "outside the model's pixel range [0, 16]",
        ),
        (
            pb.ClassifyRequest(model="digits", images=[pb.Image(encoded=b"x")] * 300),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "max_images_per_request is 256",
        ),
    ],
    ids=["empty", "shape", "bytes", "dtype", "png", "no-data", "nan", "range", "too-many"],
)
def test_invalid_requests_name_the_field(stub, bad_request, code, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(bad_request, timeout=5)
    assert info.value.code() == code
    assert needle in info.value.details()


def test_oversized_encoded_image_is_resource_exhausted(stub) -> None:  # type: ignore[no-untyped-def]
    big = encode_image(np.zeros((8, 5000), np.uint8))
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(pb.ClassifyRequest(model="digits", images=[pb.Image(encoded=big)]), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_image_side=4096" in info.value.details()


def test_health_is_serving_for_each_service(digits_server: ServerProcess) -> None:
    for service in ("", "cnn.v1.Classifier", "cnn.v1.Datasets", "inference.GRPCInferenceService"):
        assert digits_server.health(service) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(digits_server: ServerProcess) -> None:
    with digits_server.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {
        "cnn.v1.Classifier",
        "cnn.v1.Datasets",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
    } <= names
