"""Repository watching: hot swap under load, pinning, broken versions, deletion."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as tc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, local_probabilities, publish_broken, publish_copy
from tests.server.serverproc import REPO_ROOT
from tests.support.polling import wait_for


def _classify(address: str, x: np.ndarray, version: int = 0) -> pb.ClassifyResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.ClassifierStub(channel).Classify(
            pb.ClassifyRequest(
                model="digits",
                version=version,
                batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
                top_k=10,
            ),
            timeout=10,
        )


def _probs(response: pb.ClassifyResponse) -> np.ndarray:
    out = np.zeros((len(response.results), 10), np.float32)
    for i, r in enumerate(response.results):
        out[i, list(r.class_indices)] = r.probabilities
    return out


def test_publishing_under_load_fails_nothing_and_serves_new_version_within_2s(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
    digits_artifact_v2: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    server = server_factory(root)
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.server.load_client",
                server.address,
                str(tmp_path / f"client{i}.json"),
                "--duration",
                "7",
                "--threads",
                "2",
            ],
            cwd=REPO_ROOT,
        )
        for i in range(3)
    ]
    try:
        time.sleep(2.5)  # steady load on version 1
        published_at = time.time()
        assert publish_copy(root, "digits", digits_artifact_v2.path) == 2
        for proc in clients:
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in clients:
            if proc.poll() is None:
                proc.kill()
    results = [json.loads((tmp_path / f"client{i}.json").read_text()) for i in range(3)]
    for result in results:
        assert result["failed"] == 0, result["failures"]
        assert result["ok"] > 50
        assert "1" in result["first_seen"]
        assert "2" in result["first_seen"], result
        assert result["first_seen"]["2"] - published_at <= 2.0, result
    x = digits_artifact.data.x_test[:16]
    latest = _classify(server.address, x)
    assert latest.version == 2
    np.testing.assert_allclose(
        _probs(latest), local_probabilities(digits_artifact_v2.path, x), atol=1e-6
    )
    pinned = _classify(server.address, x, version=1)  # max_versions=2 keeps version 1 loaded
    np.testing.assert_allclose(
        _probs(pinned), local_probabilities(digits_artifact.path, x), atol=1e-6
    )


def test_broken_version_is_skipped_and_previous_keeps_serving(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
    digits_artifact_v2: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    server = server_factory(root)
    assert publish_broken(root, "digits", digits_artifact_v2.path) == 2
    with tc.InferenceServerClient(server.address) as client:

        def index() -> dict[str, dict]:
            return {
                m["version"]: m for m in client.get_model_repository_index(as_json=True)["models"]
            }

        wait_for(lambda: index().get("2", {}).get("state") == "UNAVAILABLE", 10, what="v2 failure")
        assert "sha256" in index()["2"]["reason"]
        assert not client.is_model_ready("digits", "2")
        x = digits_artifact.data.x_test[:4]
        assert _classify(server.address, x).version == 1
        with grpc.insecure_channel(server.address) as channel:
            try:
                pb_grpc.ClassifierStub(channel).GetModel(
                    pb.GetModelRequest(model="digits", version=2), timeout=5
                )
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                assert "failed to load" in exc.details()
            else:
                raise AssertionError("GetModel of a broken version succeeded")
        # A good version published after the broken one is picked up.
        assert publish_copy(root, "digits", digits_artifact_v2.path) == 3
        wait_for(lambda: client.is_model_ready("digits", "3"), 10, what="v3 ready")
        assert _classify(server.address, x).version == 3
    assert "failed to load" in server.process.log_text()


def test_server_starts_on_empty_repository_and_loads_models_published_later(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    root = tmp_path / "models"  # does not exist yet
    server = server_factory(root)
    with tc.InferenceServerClient(server.address) as client:
        assert client.is_server_ready()
        assert client.get_model_repository_index(as_json=True) == {}
        publish_copy(root, "digits", digits_artifact.path)
        wait_for(lambda: client.is_model_ready("digits"), 10, what="digits ready")
        # Deleting the version directory unloads it.
        import shutil

        shutil.rmtree(root / "digits" / "1")
        wait_for(lambda: not client.is_model_ready("digits"), 10, what="digits unloaded")
