"""V2 ModelStreamInfer (bidirectional streaming) against a real server, with tritonclient.

Must never import `proto.inference` (see tests/server/test_v2_api.py); raw stream messages use
tritonclient's own `service_pb2`.
"""

from __future__ import annotations

import queue
import re
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.server.models import (
    TrainedArtifact,
    publish_copy,
    save_lenet5,
    save_slow_model,
)
from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import EVENT_LIMIT_S

TOKEN = "s3cret-token"
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
LENET_SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def stream_server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[tuple[ServerProcess, int]]:
    """A server with `digits` and `lenet5` and Prometheus metrics: (server, metrics port)."""
    root = tmp_path_factory.mktemp("models")
    publish_copy(root, "digits", digits_artifact.path)
    publish_copy(root, "lenet5", save_lenet5(tmp_path_factory.mktemp("lenet5") / "lenet5"))
    server = start_server(tmp_path_factory.mktemp("server"), root, {"CNN_METRICS_PORT": "0"})
    try:
        match = server.process.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        yield server, int(match.group(1))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(stream_server: tuple[ServerProcess, int]) -> Iterator[tc.InferenceServerClient]:
    with tc.InferenceServerClient(stream_server[0].address) as c:
        yield c


def _inputs(model: str, i: int) -> np.ndarray:
    """A batch of 1..3 distinct images for request `i` in the model's pixel range."""
    rng = np.random.default_rng(i)
    n = 1 + i % 3
    if model == "digits":
        return rng.integers(0, 17, size=(n, 1, 8, 8)).astype(np.uint8)
    return rng.random((n, *LENET_SHAPE), dtype=np.float32)


def _infer_input(model: str, x: np.ndarray) -> tc.InferInput:
    inp = tc.InferInput("input", list(x.shape), "UINT8" if model == "digits" else "FP32")
    inp.set_data_from_numpy(x)
    return inp


class _Collector:
    """tritonclient stream callback: results by request id, errors in arrival order."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.errors: list[InferenceServerException] = []
        self._answered = threading.Condition()

    def __call__(self, result: Any, error: InferenceServerException | None) -> None:
        with self._answered:
            if error is not None:
                self.errors.append(error)
            else:
                self.results[result.get_response().id] = result
            self._answered.notify_all()

    def wait(self, count: int) -> None:
        with self._answered:
            assert self._answered.wait_for(
                lambda: len(self.results) + len(self.errors) >= count, EVENT_LIMIT_S
            ), f"{len(self.results)} results, {len(self.errors)} errors; expected {count}"


def _scrape(metrics_port: int, method: str, code: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    pattern = rf'^cnn_grpc_requests_total{{code="{code}",method="{method}"}} (\S+)$'
    match = re.search(pattern, text.decode(), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _success_count(client: tc.InferenceServerClient, model: str) -> int:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats["inference_stats"]["success"].get("count", 0))


@pytest.mark.parametrize("model", ["digits", "lenet5"])
def test_streamed_outputs_are_those_of_unary_infer(
    client: tc.InferenceServerClient, model: str
) -> None:
    count = 48
    batches = [_inputs(model, i) for i in range(count)]
    unary = [client.infer(model, [_infer_input(model, x)]) for x in batches]
    collected = _Collector()
    client.start_stream(collected)
    try:
        for i, x in enumerate(batches):
            client.async_stream_infer(model, [_infer_input(model, x)], request_id=f"r{i}")
        collected.wait(count)
    finally:
        client.stop_stream()
    assert not collected.errors
    assert sorted(collected.results) == sorted(f"r{i}" for i in range(count))
    for i, expected in enumerate(unary):
        got = collected.results[f"r{i}"]
        # Batch composition differs (unary one by one, the stream's requests share passes),
        # which may move the last bits of a BLAS sum; labels must be the same.
        np.testing.assert_allclose(
            got.as_numpy("probabilities"), expected.as_numpy("probabilities"), rtol=0, atol=1e-6
        )
        np.testing.assert_array_equal(got.as_numpy("label"), expected.as_numpy("label"))
        assert got.get_response().model_name == model
        assert got.get_response().model_version == "1"


def _raw_request(model: str, x: np.ndarray, request_id: str) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    datatype = "UINT8" if x.dtype == np.uint8 else "FP32"
    request.inputs.add(name="input", datatype=datatype, shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request


def test_a_bad_request_is_answered_with_its_error_and_the_stream_goes_on(
    stream_server: tuple[ServerProcess, int],
) -> None:
    good = _inputs("digits", 0)
    bad = service_pb2.ModelInferRequest(model_name="digits", id="bad-1")
    bad.inputs.add(name="input", datatype="UINT8", shape=[1, 1, 7, 8])
    bad.raw_input_contents.append(bytes(56))
    unknown = _raw_request("nope", good, "unknown-1")
    requests = [
        _raw_request("digits", good, "good-1"),
        bad,
        unknown,
        _raw_request("digits", good, "good-2"),
    ]
    with stream_server[0].channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        responses = list(stub.ModelStreamInfer(iter(requests), timeout=EVENT_LIMIT_S))
    by_id = {r.infer_response.id: r for r in responses}
    assert len(responses) == 4 and sorted(by_id) == ["bad-1", "good-1", "good-2", "unknown-1"]
    assert by_id["bad-1"].error_message.startswith("INVALID_ARGUMENT: ")
    assert "inputs[0]" in by_id["bad-1"].error_message and "shape" in by_id["bad-1"].error_message
    assert by_id["unknown-1"].error_message.startswith("NOT_FOUND: ")
    assert "'nope'" in by_id["unknown-1"].error_message
    for name in ("good-1", "good-2"):
        assert by_id[name].error_message == ""
        assert [o.name for o in by_id[name].infer_response.outputs] == ["probabilities", "label"]


def test_tritonclient_gets_errors_through_its_callback_and_later_requests_succeed(
    client: tc.InferenceServerClient,
) -> None:
    collected = _Collector()
    client.start_stream(collected)
    try:
        client.async_stream_infer(
            "digits", [_infer_input("digits", _inputs("digits", 0))], request_id="a"
        )
        wrong = tc.InferInput("input", [1, 1, 8, 8], "FP64")
        wrong.set_data_from_numpy(np.zeros((1, 1, 8, 8)))
        client.async_stream_infer("digits", [wrong], request_id="b")
        client.async_stream_infer(
            "digits", [_infer_input("digits", _inputs("digits", 1))], request_id="c"
        )
        collected.wait(3)
    finally:
        client.stop_stream()
    assert sorted(collected.results) == ["a", "c"]
    (error,) = collected.errors
    assert "datatype is 'FP64'" in error.message()


def test_many_requests_on_one_stream_are_all_answered_and_counted(
    client: tc.InferenceServerClient, stream_server: tuple[ServerProcess, int]
) -> None:
    count = 600  # several times CNN_MAX_STREAM_INFLIGHT (64)
    metrics_port = stream_server[1]
    ok_before = _scrape(metrics_port, STREAM_METHOD, "OK")
    success_before = _success_count(client, "digits")
    x = _inputs("digits", 2)
    inp = _infer_input("digits", x)
    collected = _Collector()
    client.start_stream(collected)
    try:
        for i in range(count):
            client.async_stream_infer("digits", [inp], request_id=str(i))
        collected.wait(count)
    finally:
        client.stop_stream()
    assert not collected.errors
    assert sorted(collected.results, key=int) == [str(i) for i in range(count)]
    # streamed requests count like unary ones: model statistics and per-request metrics
    assert _success_count(client, "digits") - success_before == count
    assert _scrape(metrics_port, STREAM_METHOD, "OK") - ok_before == count


def test_a_stream_without_the_token_is_refused(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    server = server_factory(root, {"CNN_AUTH_TOKEN": TOKEN})
    request = _raw_request("digits", _inputs("digits", 0), "x")
    with server.channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ModelStreamInfer(iter([request]), timeout=EVENT_LIMIT_S))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in (info.value.details() or "")
    with tc.InferenceServerClient(server.address) as c:
        collected = _Collector()
        c.start_stream(collected, headers={"authorization": f"Bearer {TOKEN}"})
        try:
            c.async_stream_infer(
                "digits", [_infer_input("digits", _inputs("digits", 0))], request_id="t"
            )
            collected.wait(1)
        finally:
            c.stop_stream()
        assert list(collected.results) == ["t"]


def test_cancelling_a_stream_mid_way_leaves_the_server_healthy(
    stream_server: tuple[ServerProcess, int], client: tc.InferenceServerClient
) -> None:
    x = _inputs("lenet5", 5)
    outgoing: queue.Queue[service_pb2.ModelInferRequest | None] = queue.Queue()

    def requests() -> Iterator[service_pb2.ModelInferRequest]:
        while (item := outgoing.get()) is not None:
            yield item

    with stream_server[0].channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        call = stub.ModelStreamInfer(requests(), timeout=EVENT_LIMIT_S)
        for i in range(200):
            outgoing.put(_raw_request("lenet5", x, f"c{i}"))
        first = next(call)
        assert first.error_message == ""
        call.cancel()  # with requests still in flight and more unread
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED
        outgoing.put(None)
    # the server goes on: a new stream and a unary call are answered
    with stream_server[0].channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        again = list(
            stub.ModelStreamInfer(iter([_raw_request("lenet5", x, "after")]), timeout=EVENT_LIMIT_S)
        )
    assert [r.infer_response.id for r in again] == ["after"] and not again[0].error_message
    assert client.infer("lenet5", [_infer_input("lenet5", x)]).as_numpy("label").shape == (3, 1)
    assert "Traceback" not in stream_server[0].process.log_text()


def test_streams_beyond_the_in_flight_byte_budget_get_errors_and_nothing_leaks(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    # ~120 bytes per request: a handful fit the budget at once
    env = {"CNN_MAX_INFLIGHT_BYTES": "1024", "CNN_MAX_MESSAGE_BYTES": "1024"}
    server = server_factory(root, env)
    x = _inputs("digits", 0)
    requests = [_raw_request("digits", x, f"q{i}") for i in range(300)]
    with server.channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        responses = list(stub.ModelStreamInfer(iter(requests), timeout=EVENT_LIMIT_S))
        assert len(responses) == 300
        for r in responses:
            if r.error_message:
                assert r.error_message.startswith("RESOURCE_EXHAUSTED: server busy")
                assert "CNN_MAX_INFLIGHT_BYTES" in r.error_message
        # answered requests released their bytes: one at a time, every request fits
        for i in range(20):
            (only,) = stub.ModelStreamInfer(
                iter([_raw_request("digits", x, f"s{i}")]), timeout=EVENT_LIMIT_S
            )
            assert only.error_message == "", only.error_message


def test_sigterm_answers_a_streams_in_flight_request_then_ends_it(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "slow", save_slow_model(tmp_path / "slow"))
    env = {"CNN_LOG_LEVEL": "debug", "CNN_SHUTDOWN_GRACE_S": str(3 * EVENT_LIMIT_S)}
    server = server_factory(root, env)
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 64, 64)).astype(np.uint8)
    outgoing: queue.Queue[service_pb2.ModelInferRequest | None] = queue.Queue()

    def requests() -> Iterator[service_pb2.ModelInferRequest]:
        while (item := outgoing.get()) is not None:
            yield item

    with server.channel() as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        call = stub.ModelStreamInfer(requests(), timeout=3 * EVENT_LIMIT_S)
        outgoing.put(_raw_request("slow", images, "in-flight"))
        server.process.wait_for_log(r"forward pass of slow:1 started: 64 rows", EVENT_LIMIT_S)
        server.process.signal_group(signal.SIGTERM)
        answer = next(call)
        assert answer.infer_response.id == "in-flight" and answer.error_message == ""
        with pytest.raises(grpc.RpcError) as info:
            next(call)  # the client never half-closed: the server ends the stream
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        outgoing.put(None)
    server.process.wait_for_log(r"shutdown complete", timeout=EVENT_LIMIT_S)
    assert server.process._proc.wait(timeout=EVENT_LIMIT_S) == 0  # type: ignore[union-attr]


def test_an_unparsable_message_is_answered_with_an_error_and_the_stream_goes_on(
    stream_server: tuple[ServerProcess, int],
) -> None:
    garbage = b"\xff\xff\xff\xff\x0f" * 10  # no valid protobuf message
    good = _raw_request("digits", _inputs("digits", 0), "after-garbage").SerializeToString()
    with stream_server[0].channel() as channel:
        call = channel.stream_stream(
            STREAM_METHOD, response_deserializer=service_pb2.ModelStreamInferResponse.FromString
        )
        responses = list(call(iter([garbage, good]), timeout=EVENT_LIMIT_S))
    errors = [r for r in responses if r.error_message]
    assert len(responses) == 2 and len(errors) == 1
    assert errors[0].error_message.startswith("INVALID_ARGUMENT: request body is not a valid")
    (ok,) = [r for r in responses if not r.error_message]
    assert ok.infer_response.id == "after-garbage"
