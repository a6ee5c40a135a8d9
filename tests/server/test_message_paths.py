"""Client-visible messages name models, versions and file names, never server paths.

A version that fails to load is reported to clients (RepositoryIndex reasons, GetModel's
NOT_FOUND message); the server log keeps the full path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as tc

from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess


@pytest.fixture()
def broken_v2(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> ServerProcess:
    """A server whose repository holds digits 1 (good) and digits 2 (model.json not JSON)."""
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    broken = root / "digits" / "2"
    shutil.copytree(digits_artifact.path, broken)
    (broken / "model.json").write_text("{ not json")
    server: ServerProcess = server_factory(root)  # returns once the first scan is done
    return server


def _assert_no_server_path(message: str, server: ServerProcess) -> None:
    assert str(server.models_dir) not in message
    assert not re.search(r"(^|[\s'\"(])/\w", message), message


def test_repository_index_reason_names_the_file_not_its_path(broken_v2: ServerProcess) -> None:
    with tc.InferenceServerClient(broken_v2.address) as client:
        index = client.get_model_repository_index(as_json=True)["models"]
    (entry,) = [e for e in index if e["version"] == "2"]
    assert entry["state"] == "UNAVAILABLE"
    assert entry["reason"].startswith("failed to load: ArtifactError: digits/2/model.json: ")
    _assert_no_server_path(entry["reason"], broken_v2)


def test_get_model_of_the_broken_version_names_the_file_not_its_path(
    broken_v2: ServerProcess,
) -> None:
    with broken_v2.channel() as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.ClassifierStub(channel).GetModel(
            pb.GetModelRequest(model="digits", version=2), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    details = info.value.details() or ""
    assert "digits/2/model.json: not valid JSON" in details
    _assert_no_server_path(details, broken_v2)


def test_the_server_log_keeps_the_full_path(broken_v2: ServerProcess) -> None:
    version_dir = broken_v2.models_dir / "digits" / "2"
    broken_v2.process.wait_for_log(re.escape(f"{version_dir}/model.json: not valid JSON"))
