"""Repository watching: hot swap under load, pinning, broken versions, deletion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as tc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, local_probabilities, publish_broken, publish_copy
from tests.server.serverproc import REPO_ROOT
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for

LIMIT_S = EVENT_LIMIT_S  # guards hangs only: the watcher polls every 0.2 s


def _classify(address: str, x: np.ndarray, version: int = 0) -> pb.ClassifyResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.ClassifierStub(channel).Classify(
            pb.ClassifyRequest(
                model="digits",
                version=version,
                batch=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=list(x.shape), data=x.tobytes()),
                top_k=10,
            ),
            timeout=LIMIT_S,
        )


def _probs(response: pb.ClassifyResponse) -> np.ndarray:
    out = np.zeros((len(response.results), 10), np.float32)
    for i, r in enumerate(response.results):
        out[i, list(r.class_indices)] = r.probabilities
    return out


class LoadClients:
    """`python -m tests.server.load_client` processes against one server, and their reports."""

    def __init__(self, address: str, workdir: Path, count: int) -> None:
        self._stop_file = workdir / "stop-load"
        self._reports = [workdir / f"client{i}.json" for i in range(count)]
        client = [sys.executable, "-m", "tests.server.load_client", address]
        self._procs = [
            subprocess.Popen([*client, str(report), str(self._stop_file)], cwd=REPO_ROOT)
            for report in self._reports
        ]

    def reports(self) -> list[dict]:
        """Each client's latest report ({} before its first); fails if a client exited early."""
        for proc in self._procs:
            if proc.poll() is not None and not self._stop_file.exists():
                raise AssertionError(f"a load client exited early with status {proc.returncode}")
        return [json.loads(r.read_text()) if r.exists() else {} for r in self._reports]

    def all_answered_by(self, version: int, answers: int) -> bool:
        return all(r.get("answers", {}).get(str(version), 0) >= answers for r in self.reports())

    def stop(self) -> list[dict]:
        """Stop the clients; returns their final reports."""
        self._stop_file.touch()
        for proc in self._procs:
            assert proc.wait(timeout=LIMIT_S) == 0
        return self.reports()

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_publishing_under_load_fails_nothing_and_the_new_version_takes_over(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
    digits_artifact_v2: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    server = server_factory(root)
    clients = LoadClients(server.address, tmp_path, count=3)
    try:
        wait_for(lambda: clients.all_answered_by(1, 20), LIMIT_S, what="steady load on version 1")
        assert publish_copy(root, "digits", digits_artifact_v2.path) == 2
        wait_for(lambda: clients.all_answered_by(2, 20), LIMIT_S, what="load on version 2")
        results = clients.stop()
    finally:
        clients.kill()
    for result in results:
        assert result["done"]
        assert result["failed"] == 0, result["failures"]
        assert set(result["answers"]) == {"1", "2"}, result
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

        wait_for(
            lambda: index().get("2", {}).get("state") == "UNAVAILABLE",
            LIMIT_S,
            what="v2 failure",
        )
        assert "sha256" in index()["2"]["reason"]
        assert not client.is_model_ready("digits", "2")
        x = digits_artifact.data.x_test[:4]
        assert _classify(server.address, x).version == 1
        with grpc.insecure_channel(server.address) as channel:
            try:
                pb_grpc.ClassifierStub(channel).GetModel(
                    pb.GetModelRequest(model="digits", version=2), timeout=LIMIT_S
                )
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                assert "failed to load" in exc.details()
            else:
                raise AssertionError("GetModel of a broken version succeeded")
        # A good version published after the broken one is picked up.
        assert publish_copy(root, "digits", digits_artifact_v2.path) == 3
        wait_for(lambda: client.is_model_ready("digits", "3"), LIMIT_S, what="v3 ready")
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
        wait_for(lambda: client.is_model_ready("digits"), LIMIT_S, what="digits ready")
        # Deleting the version directory unloads it.
        import shutil

        shutil.rmtree(root / "digits" / "1")
        wait_for(lambda: not client.is_model_ready("digits"), LIMIT_S, what="digits unloaded")
