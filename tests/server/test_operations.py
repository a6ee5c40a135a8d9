"""Operational features against real server processes: bearer auth, TLS, Prometheus
metrics, graceful shutdown on SIGTERM."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, publish_copy, save_slow_model
from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for

TOKEN = "s3cret-token"
LIMIT_S = EVENT_LIMIT_S  # guards hangs only
#: The draining server's grace period, long enough for anything in flight (guards hangs only).
DRAIN_LIMIT_S = 3 * EVENT_LIMIT_S
X = (np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8)) % 17


def _request(model: str = "digits", x: np.ndarray = X) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        model=model,
        batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
    )


def _self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def secure_server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[tuple[ServerProcess, bytes, int]]:
    """TLS + bearer auth + metrics on one server: (server, CA cert bytes, metrics port)."""
    root = tmp_path_factory.mktemp("models")
    publish_copy(root, "digits", digits_artifact.path)
    certs = tmp_path_factory.mktemp("certs")
    key, cert = _self_signed(certs)
    server = start_server(
        tmp_path_factory.mktemp("server"),
        root,
        {
            "CNN_AUTH_TOKEN": TOKEN,
            "CNN_TLS_CERT": str(cert),
            "CNN_TLS_KEY": str(key),
            "CNN_METRICS_PORT": "0",
        },
    )
    try:
        match = server.process.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        yield server, cert.read_bytes(), int(match.group(1))
    finally:
        server.stop()


def _secure_channel(server: ServerProcess, ca: bytes) -> grpc.Channel:
    return grpc.secure_channel(server.address, grpc.ssl_channel_credentials(root_certificates=ca))


def test_valid_token_over_tls_is_served(secure_server) -> None:  # type: ignore[no-untyped-def]
    server, ca, _ = secure_server
    with _secure_channel(server, ca) as channel:
        response = pb_grpc.ClassifierStub(channel).Classify(
            _request(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10
        )
    assert response.version == 1


@pytest.mark.parametrize(
    "metadata", [[], [("authorization", "Bearer wrong")], [("authorization", TOKEN)]]
)
def test_missing_or_wrong_token_is_unauthenticated(secure_server, metadata) -> None:  # type: ignore[no-untyped-def]
    server, ca, _ = secure_server
    with _secure_channel(server, ca) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.ClassifierStub(channel).ListModels(
            pb.ListModelsRequest(), metadata=metadata, timeout=5
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in info.value.details()


def test_health_needs_no_token(secure_server) -> None:  # type: ignore[no-untyped-def]
    server, ca, _ = secure_server
    with _secure_channel(server, ca) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_tritonclient_with_tls_and_token(secure_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, ca, _ = secure_server
    (tmp_path / "ca.pem").write_bytes(ca)
    with tc.InferenceServerClient(
        server.address, ssl=True, root_certificates=str(tmp_path / "ca.pem")
    ) as client:
        headers = {"authorization": f"Bearer {TOKEN}"}
        assert client.is_model_ready("digits", headers=headers)
        with pytest.raises(InferenceServerException) as info:
            client.is_model_ready("digits")
        assert "UNAUTHENTICATED" in info.value.status()


def test_plaintext_client_cannot_talk_to_tls_server(secure_server) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = secure_server
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.ClassifierStub(channel).ListModels(pb.ListModelsRequest(), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_prometheus_metrics_count_requests_batches_and_versions(secure_server) -> None:  # type: ignore[no-untyped-def]
    server, ca, port = secure_server
    with _secure_channel(server, ca) as channel:
        stub = pb_grpc.ClassifierStub(channel)
        for _ in range(3):
            stub.Classify(_request(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    ok = re.search(
        r'cnn_grpc_requests_total\{code="OK",method="/cnn.v1.Classifier/Classify"\} (\d+)', text
    )
    assert ok and int(float(ok.group(1))) >= 3, text
    assert re.search(r'cnn_grpc_requests_total\{code="UNAUTHENTICATED",method=', text)
    assert (
        'cnn_grpc_request_duration_seconds_bucket{le="0.005",method="/cnn.v1.Classifier/Classify"}'
        in text
    )
    assert re.search(r'cnn_batch_size_count\{model="digits"\} [1-9]', text)
    assert 'cnn_model_versions_loaded{model="digits"} 1.0' in text
    assert 'cnn_model_default_version{model="digits"} 1.0' in text


def _slow_images(batches: int) -> np.ndarray:
    """`batches` x 64 images for the slow model: one forward pass of about a second each."""
    x = (np.arange(64 * 64 * 64) % 256).astype(np.uint8).reshape(64, 1, 64, 64)
    return np.concatenate([x] * batches)


def _forward_passes(server: ServerProcess) -> tuple[int, int]:
    """(started, done) forward passes of the slow model so far, from the server's debug log."""
    log = server.process.log_text()
    return log.count("forward pass of slow:1 started"), log.count("forward pass of slow:1 done")


def _refuses_new_rpcs(server: ServerProcess) -> bool:
    """True once a new RPC is refused (UNAVAILABLE). One that arrives just as the server stops
    accepting RPCs may be CANCELLED instead (gRPC cancels calls not yet handed to a handler):
    not conclusive, the next one tells."""
    with server.channel() as channel:
        try:
            pb_grpc.ClassifierStub(channel).ListModels(pb.ListModelsRequest(), timeout=LIMIT_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return True
            if exc.code() == grpc.StatusCode.CANCELLED:
                return False
            raise
    return False


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "slow", save_slow_model(tmp_path / "slow"))
    env = {
        "CNN_LOG_LEVEL": "debug",  # the batcher logs each forward pass
        "CNN_SHUTDOWN_DELAY_S": "1.0",
        "CNN_SHUTDOWN_GRACE_S": str(DRAIN_LIMIT_S),
    }
    server = server_factory(root, env)
    many = _slow_images(4)  # four passes back to back: in flight for seconds
    outcome: dict[str, object] = {}

    def in_flight() -> None:
        with server.channel() as channel:
            try:
                outcome["response"] = pb_grpc.ClassifierStub(channel).Classify(
                    _request("slow", many), timeout=DRAIN_LIMIT_S
                )
            except grpc.RpcError as exc:
                outcome["error"] = exc

    # Warm the model's cost estimate (passes of 64 images go to the compute thread).
    with server.channel() as channel:
        pb_grpc.ClassifierStub(channel).Classify(_request("slow", many[:2]), timeout=LIMIT_S)
    # An open Watch stream sees the health change, and as an RPC in progress it keeps the
    # draining server up (refusing new RPCs) until the test cancels it.
    with server.channel() as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=DRAIN_LIMIT_S
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        thread = threading.Thread(target=in_flight)
        thread.start()
        server.process.wait_for_log(r"forward pass of slow:1 started: 64 rows", LIMIT_S)
        server.process.signal_group(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        thread.join(DRAIN_LIMIT_S)
        assert "error" not in outcome, outcome.get("error")
        assert len(outcome["response"].results) == 256  # type: ignore[attr-defined]
        # After the delay new RPCs are refused, by a server that is still draining.
        wait_for(lambda: _refuses_new_rpcs(server), LIMIT_S, what="new RPCs to be refused")
        assert server.process.poll() is None
        assert "shutdown complete" not in server.process.log_text()
        watch.cancel()
    server.process.wait_for_log(r"shutdown complete", timeout=LIMIT_S)
    assert server.process._proc.wait(timeout=LIMIT_S) == 0  # type: ignore[union-attr]


def test_long_forward_pass_runs_off_the_event_loop(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
) -> None:
    """Forward passes too long for the event loop run in the compute thread: while one runs,
    the server's event loop keeps answering (health, ListModels)."""
    root = tmp_path / "models"
    publish_copy(root, "slow", save_slow_model(tmp_path / "slow"))
    server = server_factory(root, {"CNN_LOG_LEVEL": "debug"})  # logs each forward pass
    x = _slow_images(1)
    stop = threading.Event()
    errors: list[grpc.RpcError] = []

    def slow_requests() -> None:  # back to back until the test has seen enough
        with server.channel() as channel:
            stub = pb_grpc.ClassifierStub(channel)
            while not stop.is_set():
                try:
                    stub.Classify(_request("slow", x), timeout=LIMIT_S)
                except grpc.RpcError as exc:
                    errors.append(exc)
                    return

    def probe_answered_during_a_pass(stub: pb_grpc.ClassifierStub) -> bool:
        started_before, done_before = _forward_passes(server)
        stub.ListModels(pb.ListModelsRequest(), timeout=LIMIT_S)
        assert server.health(timeout=LIMIT_S) == health_pb2.HealthCheckResponse.SERVING
        # A pass had started before the probe and had not ended after its answers: the loop
        # answered while the pass ran. (A pass on the loop thread ends, and logs so, before
        # the loop can answer anything.)
        return started_before > done_before and _forward_passes(server)[1] == done_before

    with server.channel() as channel:  # warm the batch-64 path and the cost estimate
        pb_grpc.ClassifierStub(channel).Classify(_request("slow", x), timeout=LIMIT_S)
    thread = threading.Thread(target=slow_requests)
    thread.start()
    try:
        with server.channel() as channel:
            stub = pb_grpc.ClassifierStub(channel)
            for _ in range(3):
                wait_for(
                    lambda: probe_answered_during_a_pass(stub),
                    LIMIT_S,
                    interval=0.0,
                    what="health and ListModels answered while a forward pass runs",
                )
    finally:
        stop.set()
        thread.join(LIMIT_S)
    assert not errors, errors
