"""Durable writes: atomic replacement, and fsync of files, directories and trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.durable import atomic_write_bytes, fsync_dir, fsync_file, fsync_tree


def test_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_failed_atomic_write_keeps_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_fsync_tree_opens_files_as_files_and_directories_as_directories(tmp_path: Path) -> None:
    """(a file opened with O_DIRECTORY, or the reverse, would raise)"""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "weights.npz").write_bytes(b"x")
    (tmp_path / "model.json").write_text("{}")
    fsync_tree(tmp_path)
    fsync_file(tmp_path / "model.json")
    fsync_dir(tmp_path / "a")


def test_fsync_of_a_missing_path_or_a_file_as_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "gone")
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsync_dir(tmp_path / "f")
