"""Version lifecycle files: policies select versions, the file is validated, written atomically
world-readable, and a deleted version leaves no half directory behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.lifecycle import (
    POLICY_FILE,
    UNLOADED,
    LifecycleError,
    ModelLifecycle,
    VersionPolicy,
    read_lifecycle,
    trash_version,
    write_lifecycle,
)
from core.repository import ModelRepository


def _publish(root: Path, name: str, count: int) -> ModelRepository:
    repo = ModelRepository(root)
    for _ in range(count):
        repo.publish(name, lambda d: (d / "model.json").write_text("{}"))
    return repo


def test_latest_selects_the_newest_n() -> None:
    assert VersionPolicy.latest(2).select([1, 3, 2, 5], cap=16) == [3, 5]
    assert VersionPolicy.latest(9).select([1, 2], cap=16) == [1, 2]


def test_specific_selects_only_the_named_versions_that_exist() -> None:
    assert VersionPolicy.specific([5, 1, 1]).versions == (1, 5)
    assert VersionPolicy.specific([1, 5, 7]).select([1, 2, 3, 5], cap=16) == [1, 5]


def test_all_selects_everything_up_to_the_cap_newest() -> None:
    assert VersionPolicy.all().select([1, 2, 3], cap=16) == [1, 2, 3]
    assert VersionPolicy.all().select([1, 2, 3], cap=2) == [2, 3]
    assert VersionPolicy.latest(3).select([1, 2, 3], cap=1) == [3]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "latest"},
        {"kind": "latest", "num_versions": 0},
        {"kind": "specific", "versions": ()},
        {"kind": "specific", "versions": (0,)},
        {"kind": "specific", "versions": (3, 1)},
        {"kind": "all", "num_versions": 2},
        {"kind": "newest"},
    ],
)
def test_an_inconsistent_policy_is_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        VersionPolicy(**fields)


def test_no_file_means_loaded_with_the_default_policy(tmp_path: Path) -> None:
    _publish(tmp_path, "digits", 1)
    assert read_lifecycle(tmp_path, "digits") == ModelLifecycle()


def test_written_lifecycle_reads_back_and_is_world_readable(tmp_path: Path) -> None:
    _publish(tmp_path, "digits", 1)
    old = os.umask(0o077)  # a private umask must not make the file unreadable to others
    try:
        lifecycle = ModelLifecycle(state=UNLOADED, policy=VersionPolicy.specific([1]))
        write_lifecycle(tmp_path, "digits", lifecycle)
    finally:
        os.umask(old)
    path = tmp_path / "digits" / POLICY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert read_lifecycle(tmp_path, "digits") == lifecycle
    assert sorted(p.name for p in path.parent.iterdir()) == ["1", POLICY_FILE]  # no temp left


def test_an_invalid_file_is_reported_naming_the_field(tmp_path: Path) -> None:
    _publish(tmp_path, "digits", 1)
    (tmp_path / "digits" / POLICY_FILE).write_text('{"state": "loaded", "policy": {"kind": "x"}}')
    with pytest.raises(LifecycleError, match=r"digits/policy\.json is invalid at policy\.kind"):
        read_lifecycle(tmp_path, "digits")


def test_trash_version_removes_the_directory_and_leaves_no_hidden_trash(tmp_path: Path) -> None:
    repo = _publish(tmp_path, "digits", 2)
    (tmp_path / "digits" / ".trash-9-leftover").mkdir()  # what a crash mid-delete leaves
    trash_version(tmp_path, "digits", 1)
    assert repo.versions("digits") == [2]
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["2"]
