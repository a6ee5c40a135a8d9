"""Model repository: versions appear atomically and never collide, even across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from core.repository import MODEL_NAME_PATTERN, MODEL_NAME_RE, ModelRepository, RepositoryError


def _write_marker(text: str):
    def write(directory: Path) -> None:
        (directory / "model.json").write_text(text)

    return write


def test_publish_numbers_versions_from_one(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    assert repo.publish("digits", _write_marker("a")) == 1
    assert repo.publish("digits", _write_marker("b")) == 2
    assert repo.versions("digits") == [1, 2]
    assert repo.names() == ["digits"]
    assert (repo.path("digits", 2) / "model.json").read_text() == "b"


def test_hidden_and_non_numeric_directories_are_not_versions(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    (tmp_path / "m" / ".tmp-abc").mkdir(parents=True)
    (tmp_path / "m" / "notes").mkdir()
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    assert repo.versions("m") == []
    assert repo.names() == []
    assert repo.publish("m", _write_marker("x")) == 1


def test_a_failing_writer_leaves_nothing_behind(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)

    def broken(directory: Path) -> None:
        (directory / "weights.npz").write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        repo.publish("m", broken)
    assert list((tmp_path / "m").iterdir()) == []
    assert repo.versions("m") == []


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="produced no files"):
        ModelRepository(tmp_path).publish("m", lambda d: None)


def test_publish_skips_a_version_taken_meanwhile(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.publish("m", _write_marker("1"))

    def racing_writer(directory: Path) -> None:
        # another publisher wins version 2 while we are still writing
        (tmp_path / "m" / "2").mkdir()
        (tmp_path / "m" / "2" / "model.json").write_text("theirs")
        (directory / "model.json").write_text("ours")

    assert repo.publish("m", racing_writer) == 3
    assert (repo.path("m", 2) / "model.json").read_text() == "theirs"
    assert (repo.path("m", 3) / "model.json").read_text() == "ours"


def test_invalid_names_and_versions_are_refused(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    for name in ("", ".hidden", "../up", "a/b", "x" * 65, "digits\n"):
        with pytest.raises(RepositoryError, match="model name"):
            repo.publish(name, _write_marker("x"))
    with pytest.raises(RepositoryError, match="integer ≥ 1"):
        repo.path("m", 0)


def _publish_many(root: str, count: int, queue: multiprocessing.Queue) -> None:
    repo = ModelRepository(root)
    queue.put([repo.publish("shared", _write_marker(str(i))) for i in range(count)])


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_publish_many, args=(str(tmp_path), 8, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [v for _ in procs for v in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(got) == list(range(1, 33))
    assert ModelRepository(tmp_path).versions("shared") == list(range(1, 33))


def test_the_name_pattern_string_means_the_same_to_pydantic() -> None:
    """`MODEL_NAME_PATTERN` is also given to pydantic (`Field(pattern=...)`, Rust regex)."""
    from pydantic import BaseModel, Field, ValidationError

    class Named(BaseModel):
        name: str = Field(pattern=MODEL_NAME_PATTERN)

    for name in ("digits", "a.b_c-1", "9" * 64, "", "_x", "x" * 65, "a b", "digits\n"):
        try:
            accepted = bool(Named(name=name))
        except ValidationError:
            accepted = False
        assert accepted == bool(MODEL_NAME_RE.fullmatch(name)), name
