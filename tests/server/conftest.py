"""Fixtures of the server suite: a trained digits artifact and real server processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.models import TrainedArtifact, publish_copy, train_digits
from tests.server.serverproc import ServerProcess, start_server


@pytest.fixture(scope="session")
def digits_artifact(tmp_path_factory: pytest.TempPathFactory) -> TrainedArtifact:
    """A digits CNN trained for a few epochs (about 2 s), saved once per session."""
    return train_digits(tmp_path_factory.mktemp("artifact") / "digits", seed=0, epochs=3)


@pytest.fixture(scope="session")
def digits_artifact_v2(tmp_path_factory: pytest.TempPathFactory) -> TrainedArtifact:
    """A second, differently seeded digits model (a "new version" with other weights)."""
    return train_digits(tmp_path_factory.mktemp("artifact2") / "digits", seed=1, epochs=2)


@pytest.fixture(scope="module")
def digits_server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[ServerProcess]:
    """One server per test module, serving `digits` version 1."""
    root = tmp_path_factory.mktemp("models")
    publish_copy(root, "digits", digits_artifact.path)
    server = start_server(tmp_path_factory.mktemp("server"), root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def server_factory(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Start servers with custom env; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(models_dir: Path, env: dict[str, str] | None = None, **kwargs) -> ServerProcess:  # type: ignore[no-untyped-def]
        server = start_server(tmp_path / f"srv{len(started)}", models_dir, env, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
