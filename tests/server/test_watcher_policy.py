"""The repository watcher follows each model's `policy.json` (version policy, load / unload):
one scan at a time, called directly, on a real repository and real model loading."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.lifecycle import UNLOADED, ModelLifecycle, VersionPolicy, trash_version, write_lifecycle
from server.model import ServedModel, load_version
from server.registry import READY, UNAVAILABLE, ModelRegistry
from server.watcher import RepositoryWatcher
from tests.server.models import TrainedArtifact, publish_copy
from tests.support.limits import EVENT_LIMIT_S


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture()
def repo(
    tmp_path: Path, digits_artifact: TrainedArtifact, loop: asyncio.AbstractEventLoop
) -> Iterator[tuple[Path, RepositoryWatcher, ModelRegistry]]:
    """digits versions 1, 2, 3 on disk; a watcher (max_versions=2, cap 3) not yet scanned."""
    root = tmp_path / "models"
    for _ in range(3):
        publish_copy(root, "digits", digits_artifact.path)
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

    watcher = RepositoryWatcher(
        root, registry, load, interval_s=60.0, max_versions=2, max_served_versions=3
    )
    try:
        yield root, watcher, registry
    finally:
        registry.close_all()


def _index(registry: ModelRegistry) -> dict[int, tuple[str, str]]:
    return {s.version: (s.state, s.reason) for s in registry.index("digits")}


def _set(root: Path, lifecycle: ModelLifecycle, watcher: RepositoryWatcher) -> None:
    write_lifecycle(root, "digits", lifecycle)
    watcher.scan_once()


def test_without_a_policy_file_the_newest_max_versions_serve(repo) -> None:  # type: ignore[no-untyped-def]
    _root, watcher, registry = repo
    watcher.scan_once()
    assert registry.versions("digits") == [2, 3]
    assert _index(registry)[1] == (UNAVAILABLE, "not selected by the version policy latest 2")
    view = registry.policy("digits")
    assert view is not None and view.is_default and str(view.policy) == "latest 2"


def test_each_policy_selects_its_versions(repo) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    _set(root, ModelLifecycle(policy=VersionPolicy.latest(1)), watcher)
    assert registry.versions("digits") == [3]
    _set(root, ModelLifecycle(policy=VersionPolicy.all()), watcher)
    assert registry.versions("digits") == [1, 2, 3]
    _set(root, ModelLifecycle(policy=VersionPolicy.specific([1])), watcher)
    assert registry.versions("digits") == [1]
    assert registry.get("digits").version == 1  # the default follows the policy
    assert _index(registry) == {
        1: (READY, ""),
        2: (UNAVAILABLE, "not selected by the version policy specific [1]"),
        3: (UNAVAILABLE, "not selected by the version policy specific [1]"),
    }


def test_an_unloaded_model_serves_nothing_and_lists_every_version_unloaded(repo) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    watcher.scan_once()
    _set(root, ModelLifecycle(state=UNLOADED), watcher)
    assert registry.versions("digits") == []
    assert registry.models() == ["digits"]
    assert _index(registry) == {v: (UNAVAILABLE, "unloaded") for v in (1, 2, 3)}
    with pytest.raises(LookupError, match="is unloaded"):
        registry.get("digits")
    _set(root, ModelLifecycle(), watcher)
    assert registry.versions("digits") == [2, 3]


def test_a_policy_whose_versions_fail_keeps_the_previous_ones_serving(repo) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    watcher.scan_once()
    (root / "digits" / "1" / "weights.npz").write_bytes(b"broken")
    _set(root, ModelLifecycle(policy=VersionPolicy.specific([1])), watcher)
    assert registry.versions("digits") == [2, 3]  # never left empty by a failed load
    state, reason = _index(registry)[1]
    assert state == UNAVAILABLE and reason.startswith("failed to load")


def test_a_deleted_version_is_unloaded_and_leaves_the_index(repo) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    watcher.scan_once()
    trash_version(root, "digits", 3)
    watcher.scan_once()
    assert registry.versions("digits") == [1, 2]
    assert 3 not in _index(registry)


def test_a_broken_policy_file_falls_back_to_the_default(repo, caplog) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    (root / "digits" / "policy.json").write_text('{"state": "gone"}')
    watcher.scan_once()
    assert registry.versions("digits") == [2, 3]
    assert "policy.json is invalid at state" in caplog.text


def test_the_cap_bounds_all(repo, digits_artifact: TrainedArtifact) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    publish_copy(root, "digits", digits_artifact.path)  # 4 versions, cap 3
    _set(root, ModelLifecycle(policy=VersionPolicy.all()), watcher)
    assert registry.versions("digits") == [2, 3, 4]


def test_request_scan_waits_for_a_scan_that_began_after_the_request(repo) -> None:  # type: ignore[no-untyped-def]
    root, watcher, registry = repo
    watcher.start()
    try:
        assert watcher.wait_scanned(watcher.request_scan(), timeout=EVENT_LIMIT_S)
        write_lifecycle(root, "digits", ModelLifecycle(policy=VersionPolicy.latest(1)))
        assert watcher.wait_scanned(watcher.request_scan(), timeout=EVENT_LIMIT_S)
        assert registry.versions("digits") == [3]  # interval 60 s: the requested scan did it
    finally:
        watcher.stop()
