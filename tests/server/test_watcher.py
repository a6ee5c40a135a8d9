"""The repository watcher retries a version that failed to load once its files change.

A version directory copied in by hand appears file by file (`model.json` first, the weights
later); it must be served once the copy is complete, without a restart.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as tc

from server.model import ServedModel, load_version
from server.registry import READY, UNAVAILABLE, ModelRegistry
from server.watcher import RepositoryWatcher
from tests.server.models import TrainedArtifact
from tests.support.polling import wait_for


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def _watcher(
    root: Path, loop: asyncio.AbstractEventLoop
) -> tuple[RepositoryWatcher, ModelRegistry]:
    registry = ModelRegistry()

    def load(path: Path, name: str, version: int) -> ServedModel:
        return load_version(
            path,
            name,
            version,
            max_batch_size=8,
            max_queue_delay_s=0.0,
            max_queue_size=16,
            loop=loop,
        )

    return RepositoryWatcher(root, registry, load, interval_s=60.0, max_versions=2), registry


def _state(registry: ModelRegistry, name: str, version: int) -> str | None:
    for state in registry.index():
        if (state.name, state.version) == (name, version):
            return state.state
    return None


def test_a_version_copied_file_by_file_is_served_within_two_scans_of_the_last_file(
    tmp_path: Path, digits_artifact: TrainedArtifact, loop: asyncio.AbstractEventLoop
) -> None:
    root = tmp_path / "models"
    version_dir = root / "digits" / "1"
    version_dir.mkdir(parents=True)
    watcher, registry = _watcher(root, loop)
    try:
        shutil.copyfile(digits_artifact.path / "model.json", version_dir / "model.json")
        watcher.scan_once()
        assert _state(registry, "digits", 1) == UNAVAILABLE
        watcher.scan_once()  # unchanged: not retried (no reload storm, no log spam)
        assert _state(registry, "digits", 1) == UNAVAILABLE

        for item in digits_artifact.path.iterdir():
            if item.name != "model.json":
                shutil.copyfile(item, version_dir / item.name)
        scans = 0
        while _state(registry, "digits", 1) != READY and scans < 2:
            watcher.scan_once()
            scans += 1
        assert _state(registry, "digits", 1) == READY, f"not served after {scans} scans"
        assert registry.versions("digits") == [1]
    finally:
        registry.close_all()


def test_a_version_that_stays_broken_is_not_retried(
    tmp_path: Path, digits_artifact: TrainedArtifact, loop: asyncio.AbstractEventLoop
) -> None:
    root = tmp_path / "models"
    version_dir = root / "digits" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.json").write_text("{not json")
    attempts: list[int] = []
    watcher, registry = _watcher(root, loop)
    real_load = watcher._loader

    def counting_load(path: Path, name: str, version: int) -> ServedModel:
        attempts.append(version)
        return real_load(path, name, version)

    watcher._loader = counting_load
    for _ in range(3):
        watcher.scan_once()
    assert attempts == [1]
    assert _state(registry, "digits", 1) == UNAVAILABLE


def test_the_server_serves_a_hand_copied_version_without_a_restart(
    tmp_path: Path,
    server_factory,  # type: ignore[no-untyped-def]
    digits_artifact: TrainedArtifact,
) -> None:
    root = tmp_path / "models"
    version_dir = root / "digits" / "1"
    version_dir.mkdir(parents=True)
    server = server_factory(root, {"CNN_POLL_INTERVAL_S": "0.2"})
    with tc.InferenceServerClient(server.address) as client:
        shutil.copyfile(digits_artifact.path / "model.json", version_dir / "model.json")

        def unavailable() -> bool:
            index = client.get_model_repository_index(as_json=True).get("models", [])
            return any(entry.get("state") == UNAVAILABLE for entry in index)

        wait_for(unavailable, 120, what="the half-copied version reported UNAVAILABLE")
        for item in digits_artifact.path.iterdir():
            if item.name != "model.json":
                shutil.copyfile(item, version_dir / item.name)
        wait_for(lambda: client.is_model_ready("digits", "1"), 120, what="digits 1 served")
