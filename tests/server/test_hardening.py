"""A hostile caller's view of the server: what it can make the server do before it is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.server.models import TrainedArtifact, publish_copy

TOKEN = "s3cret-token"


@pytest.fixture()
def token_server(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> Iterator[str]:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    yield server_factory(root, {"CNN_AUTH_TOKEN": TOKEN}).address


@pytest.mark.parametrize(
    "method",
    [
        "/cnn.v1.Classifier/Classify",
        "/inference.GRPCInferenceService/ModelInfer",
        "/cnn.v1.Training/Submit",
    ],
)
def test_an_unauthenticated_request_is_refused_without_being_parsed(
    token_server: str, method: str
) -> None:
    # Bytes that are no valid protobuf message: a server that parsed them before checking the
    # token would answer INVALID_ARGUMENT (or UNKNOWN), not UNAUTHENTICATED.
    garbage = b"\xff\xff\xff\xff\x0f" * 1000
    with grpc.insecure_channel(token_server) as channel:
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            call(garbage, timeout=60)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    assert "bearer token" in (info.value.details() or "")
