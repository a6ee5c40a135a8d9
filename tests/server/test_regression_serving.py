"""A regression model end to end: trained by the worker's training function on a generated
disc data set, published, served by a real server and read with unmodified tritonclient.

ModelInfer answers the FP32 output "prediction" [N, 3] (disc centre x, y and radius in pixels),
equal to the local prediction; the Triton classification parameter is refused; Classify answers
FAILED_PRECONDITION naming ModelInfer; GetModel and the V2 metadata/config tell the task.
This module must never import `proto.inference` (tritonclient registers the same names).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from sklearn.metrics import r2_score
from tritonclient.utils import InferenceServerException

from core.artifacts import load_artifact
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.serverproc import ServerProcess, start_server
from tests.support.discs import DISC_TARGETS
from tests.support.regression_run import DISC_MIN_R2, DiscRun, train_discs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DiscRun:
    return train_discs(tmp_path_factory.mktemp("discs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, run: DiscRun) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("server"), run.models_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[tc.InferenceServerClient]:
    with tc.InferenceServerClient(server.address) as c:
        yield c


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.ClassifierStub]:
    with server.channel() as channel:
        yield pb_grpc.ClassifierStub(channel)


def _input(x: np.ndarray) -> tc.InferInput:
    inp = tc.InferInput("input", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x)
    return inp


def test_served_predictions_equal_the_local_ones_and_reach_the_r2(
    client: tc.InferenceServerClient, run: DiscRun
) -> None:
    result = client.infer("discs", [_input(run.x_test)])
    served = result.as_numpy("prediction")
    assert served.dtype == np.float32 and served.shape == run.y_test.shape
    local = load_artifact(run.outcome.path).regress(run.x_test)
    np.testing.assert_allclose(served, local, rtol=1e-5, atol=1e-4)
    assert r2_score(run.y_test, served) >= DISC_MIN_R2
    assert result.as_numpy("probabilities") is None


def test_metadata_and_config_describe_the_prediction(client: tc.InferenceServerClient) -> None:
    meta = client.get_model_metadata("discs", as_json=True)
    assert meta["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": ["-1", "3"]}]
    config = client.get_model_config("discs", as_json=True)["config"]
    params = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert params["task"] == "regression"
    assert json.loads(params["target_names"]) == list(DISC_TARGETS)
    assert params["prediction_units"] == "target units"
    assert "class_names" not in params
    assert [o["name"] for o in config["output"]] == ["prediction"]


def test_a_client_built_from_the_metadata_alone_gets_the_prediction(
    client: tc.InferenceServerClient, run: DiscRun
) -> None:
    meta = client.get_model_metadata("discs", as_json=True)
    outputs = [tc.InferRequestedOutput(o["name"]) for o in meta["outputs"]]
    result = client.infer("discs", [_input(run.x_test[:4])], outputs=outputs)
    assert result.as_numpy("prediction").shape == (4, 3)


def test_the_classification_parameter_is_refused_naming_it(
    client: tc.InferenceServerClient, run: DiscRun
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(
            "discs",
            [_input(run.x_test[:1])],
            outputs=[tc.InferRequestedOutput("prediction", class_count=2)],
        )
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "parameters['classification']" in info.value.message()
    assert "regression model" in info.value.message()


def test_a_classifier_output_is_refused_naming_the_outputs(
    client: tc.InferenceServerClient, run: DiscRun
) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(
            "discs", [_input(run.x_test[:1])], outputs=[tc.InferRequestedOutput("probabilities")]
        )
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "has outputs 'prediction'" in info.value.message()


def test_classify_answers_failed_precondition_naming_model_infer(
    stub: pb_grpc.ClassifierStub, run: DiscRun
) -> None:
    x = run.x_test[:2]
    tensor = pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes())
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(pb.ClassifyRequest(model="discs", batch=tensor), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "model 'discs' is a regression model; use ModelInfer (KServe V2)"
    )


def test_get_model_tells_the_task_targets_and_report(
    stub: pb_grpc.ClassifierStub, run: DiscRun
) -> None:
    response = stub.GetModel(pb.GetModelRequest(model="discs"), timeout=10)
    assert response.task == "regression"
    assert list(response.target_names) == list(DISC_TARGETS)
    assert list(response.class_names) == []
    report = response.evaluation
    assert report.task == "regression" and report.samples == run.y_test.shape[0]
    assert [t.name for t in report.regression.targets] == list(DISC_TARGETS)
    assert report.regression.r2 == pytest.approx(run.outcome.metrics["test_r2"], rel=1e-9)
    assert response.metrics["test_r2"] >= DISC_MIN_R2
