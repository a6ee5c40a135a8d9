"""Data store: content-addressed, immutable, versioned by name, and nothing half-written shows."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.datastore import (
    DatasetMeta,
    DatasetNotFound,
    DataStore,
    DataStoreError,
    content_digest,
)

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _meta(**changes: object) -> DatasetMeta:
    fields: dict[str, object] = {
        "format": "images",
        "samples": 5,
        "classes": ("cat", "dog"),
        "class_counts": (2, 3),
        "channels": 3,
        "min_height": 20,
        "max_height": 40,
        "min_width": 30,
        "max_width": 30,
        "mean": (120.5, 110.0, 99.25),
        "std": (60.0, 55.5, 50.0),
        "train_samples": 4,
        "test_samples": 1,
        "created_at": CREATED,
        "source": "pets.zip",
        "size_bytes": 1234,
    }
    fields.update(changes)
    return DatasetMeta.model_validate(fields)


def _commit(store: DataStore, name: str, files: dict[str, bytes]) -> tuple[str, int]:
    with store.staging() as staged:
        for relative, data in files.items():
            (staged / relative).parent.mkdir(parents=True, exist_ok=True)
            (staged / relative).write_bytes(data)
        stored = store.commit(staged, name, _meta())
    return stored.digest, stored.version


def _visible(root: Path) -> list[str]:
    """Everything under root that is not hidden (staging space, the lock file)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("."))


@pytest.fixture()
def store(tmp_path: Path) -> DataStore:
    return DataStore(tmp_path / "data")


# -- metadata ---------------------------------------------------------------------------------


def test_meta_round_trips_through_json() -> None:
    meta = _meta()
    assert DatasetMeta.model_validate_json(meta.model_dump_json()) == meta
    assert meta.image_size is None
    assert _meta(min_height=40).image_size == (40, 30)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_counts": (2,)}, "one count per class"),
        ({"class_counts": (1, 3)}, "sum to samples=5"),
        ({"classes": ("cat", "cat")}, "unique"),
        ({"mean": (1.0, 2.0)}, "mean needs one value per channel"),
        ({"std": (1.0, float("nan"), 1.0)}, "std must be finite"),
        ({"min_height": 50}, "min_height=50 exceeds max_height=40"),
        ({"test_samples": None}, "both be given"),
        ({"test_samples": 2}, "must equal samples=5"),
        ({"created_at": datetime(2026, 1, 1)}, "time zone"),
        ({"channels": 5}, "channels"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_inconsistent_meta_is_refused_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _meta(**changes)


def test_meta_gives_the_normalisation_of_its_statistics() -> None:
    normalisation = _meta().normalisation()
    assert normalisation.mean == [120.5, 110.0, 99.25]
    assert normalisation.std == [60.0, 55.5, 50.0]


# -- digest -----------------------------------------------------------------------------------


def test_the_digest_is_the_documented_hash_of_paths_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"png")
    (tmp_path / "a.npz").write_bytes(b"npz!")
    # entries sorted by path bytes: "a.npz" < "b" < "b/x.png"
    u64 = lambda n: n.to_bytes(8, "big")  # noqa: E731
    stream = (
        b"f" + u64(5) + b"a.npz" + u64(4) + b"npz!"
        + b"d" + u64(1) + b"b"
        + b"f" + u64(7) + b"b/x.png" + u64(3) + b"png"
    )  # fmt: skip
    assert content_digest(tmp_path) == hashlib.sha256(stream).hexdigest()


def test_the_digest_sees_names_and_bytes_but_not_times_or_modes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        root.mkdir()
        (root / "x").write_bytes(b"12")
    os.utime(two / "x", (0, 0))
    os.chmod(two / "x", 0o600)
    assert content_digest(one) == content_digest(two)
    (two / "x").write_bytes(b"21")
    assert content_digest(one) != content_digest(two)
    (two / "x").write_bytes(b"12")
    (two / "x").rename(two / "y")
    assert content_digest(one) != content_digest(two)


def test_links_and_empty_trees_cannot_be_committed(store: DataStore) -> None:
    with store.staging() as staged, pytest.raises(DataStoreError, match="holds no file"):
        store.commit(staged, "cats", _meta())
    with store.staging() as staged:
        (staged / "real").write_bytes(b"x")
        (staged / "alias").symlink_to(staged / "real")
        with pytest.raises(DataStoreError, match="alias is not a regular file"):
            store.commit(staged, "cats", _meta())
    assert store.list() == []


# -- commit and resolve -----------------------------------------------------------------------


def test_staging_is_a_hidden_directory_under_the_root_removed_on_exit(store: DataStore) -> None:
    with store.staging() as staged:
        assert staged.parent == store.root
        assert staged.name.startswith(".")
        (staged / "x").write_bytes(b"x")
    assert not staged.exists()
    assert store.list() == []


def test_a_commit_round_trips_content_and_meta(store: DataStore) -> None:
    digest, version = _commit(store, "cats", {"data.npz": b"abc", "extra/readme": b"r"})
    stored = store.resolve("cats")
    assert (version, stored.version, stored.name, stored.ref) == (1, 1, "cats", "cats:1")
    assert stored.digest == digest
    assert stored.meta == _meta()
    assert stored.path == store.root / "datasets" / digest / "content"
    assert (stored.path / "data.npz").read_bytes() == b"abc"
    assert (stored.path / "extra" / "readme").read_bytes() == b"r"
    assert content_digest(stored.path) == digest
    assert store.list() == [stored]


def test_versions_count_up_per_name(store: DataStore) -> None:
    assert _commit(store, "cats", {"x": b"1"})[1] == 1
    assert _commit(store, "cats", {"x": b"2"})[1] == 2
    assert _commit(store, "dogs", {"x": b"3"})[1] == 1
    assert [s.ref for s in store.list()] == ["cats:1", "cats:2", "dogs:1"]
    assert store.versions("cats") == [1, 2]


def test_the_same_content_is_stored_once(store: DataStore) -> None:
    first, _ = _commit(store, "cats", {"x": b"same"})
    again, version = _commit(store, "felines", {"x": b"same"})
    assert (again, version) == (first, 1)
    assert [p.name for p in (store.root / "datasets").iterdir()] == [first]
    assert [s.ref for s in store.list()] == ["cats:1", "felines:1"]
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".staging-")] == []


def test_resolve_accepts_name_name_version_pair_and_digest(store: DataStore) -> None:
    old, _ = _commit(store, "cats", {"x": b"old"})
    new, _ = _commit(store, "cats", {"x": b"new"})
    assert store.resolve("cats").digest == new
    assert store.resolve("cats:1").digest == old
    assert store.resolve(("cats", 2)).digest == new
    assert store.resolve(old).ref == "cats:1"
    assert store.resolve(f"sha256:{new}").ref == "cats:2"
    assert store.resolve(new.upper()).ref == "cats:2"


def test_a_digest_resolves_to_the_first_name_pointing_to_it(store: DataStore) -> None:
    digest, _ = _commit(store, "zebras", {"x": b"same"})
    _commit(store, "ants", {"x": b"other"})
    _commit(store, "ants", {"x": b"same"})
    assert store.resolve(digest).ref == "ants:2"


def test_not_found_says_what_was_asked_and_what_exists(store: DataStore) -> None:
    with pytest.raises(DatasetNotFound, match="'cats' not found: the store is empty"):
        store.resolve("cats")
    _commit(store, "cats", {"x": b"1"})
    _commit(store, "cats", {"x": b"2"})
    _commit(store, "dogs", {"x": b"3"})
    stored = r"stored: cats \(versions 1, 2\), dogs \(versions 1\)"
    for ref in ("cats:3", "birds", "0" * 64):
        with pytest.raises(DatasetNotFound, match=f"'{ref}' not found; {stored}"):
            store.resolve(ref)
    with pytest.raises(DatasetNotFound, match="'cats:7' not found"):
        store.resolve(("cats", 7))


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("cats:0", "version after ':' must be an integer ≥ 1"),
        ("cats:two", "version after ':' must be an integer ≥ 1"),
        ("cats:", "version after ':' must be an integer ≥ 1"),
        ("../cats", "data set name '../cats' is invalid"),
        (("cats", 0), "version must be an integer ≥ 1"),
        (("cats", True), "version must be an integer ≥ 1"),
        ("x" * 65, "data set name"),
        ("sha256:" + "0" * 63, "version after ':' must be an integer ≥ 1"),
    ],
)
def test_malformed_references_are_refused(store: DataStore, ref: object, message: str) -> None:
    with pytest.raises(DataStoreError, match=message):
        store.resolve(ref)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a/b", "x" * 65, "cats\n", "cats:2", "f" * 64, "AB" * 32]
)
def test_invalid_names_are_refused_at_commit(store: DataStore, name: str) -> None:
    with store.staging() as staged:
        (staged / "x").write_bytes(b"x")
        with pytest.raises(DataStoreError, match=r"data set name .* is invalid"):
            store.commit(staged, name, _meta())
    assert store.list() == []


def test_only_staging_directories_of_the_store_can_be_committed(
    store: DataStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x").write_bytes(b"x")
    with pytest.raises(DataStoreError, match="was not made by staging"):
        store.commit(elsewhere, "cats", _meta())
    with store.staging() as staged:
        (staged / "x").write_bytes(b"x")
        store.commit(staged, "cats", _meta())
        with pytest.raises(DataStoreError, match="committed already"):
            store.commit(staged, "cats", _meta())
    assert store.versions("cats") == [1]


# -- interrupted commits ------------------------------------------------------------------------


def test_an_error_inside_staging_leaves_nothing(store: DataStore) -> None:
    _commit(store, "cats", {"x": b"1"})
    before = _visible(store.root)
    with pytest.raises(OSError, match="connection lost"), store.staging() as staged:
        (staged / "part").write_bytes(b"half an upload")
        raise OSError("connection lost")
    assert _visible(store.root) == before
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".staging-")] == []
    assert [s.ref for s in store.list()] == ["cats:1"]


def test_stale_staging_is_cleaned_and_fresh_staging_kept(store: DataStore) -> None:
    _commit(store, "cats", {"x": b"1"})
    before = store.list()
    # a killed upload: its staging directory stays, hidden
    crashed = store.root / ".staging-crashed"
    (crashed / "sub").mkdir(parents=True)
    (crashed / "sub" / "part").write_bytes(b"half")
    hour_ago = time.time() - 3600
    for path in (crashed / "sub" / "part", crashed / "sub", crashed):
        os.utime(path, (hour_ago, hour_ago))
    assert store.list() == before
    with store.staging() as in_progress:
        (in_progress / "part").write_bytes(b"still uploading")
        assert store.clean_stale_staging(max_age_s=600) == [crashed]
        assert in_progress.is_dir()
    assert not crashed.exists()
    assert store.list() == before


def test_content_left_without_a_name_is_unlisted_and_cleaned(store: DataStore) -> None:
    # a process killed between storing content and claiming the name
    digest, _ = _commit(store, "cats", {"x": b"orphan"})
    (store.root / "names" / "cats" / "1").unlink()
    assert store.list() == []
    with pytest.raises(DatasetNotFound):
        store.resolve(digest)
    assert store.clean_stale_staging(max_age_s=600) == [store.root / "datasets" / digest]
    assert list((store.root / "datasets").iterdir()) == []


def test_a_commit_failing_after_storing_content_lists_nothing_new(store: DataStore) -> None:
    _commit(store, "cats", {"x": b"1"})
    before = store.list()
    # "dogs" cannot get an index entry: the name's directory is taken by a file
    (store.root / "names" / "dogs").write_bytes(b"")
    with store.staging() as staged:
        (staged / "x").write_bytes(b"2")
        with pytest.raises(NotADirectoryError):
            store.commit(staged, "dogs", _meta())
    assert store.list() == before
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".staging-")] == []
    orphan = [p for p in (store.root / "datasets").iterdir() if p.name != before[0].digest]
    assert len(orphan) == 1
    assert store.clean_stale_staging(max_age_s=600) == orphan
    assert store.list() == before


# -- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_version_and_its_unshared_content(store: DataStore) -> None:
    digest, _ = _commit(store, "cats", {"x": b"1"})
    store.delete("cats", 1)
    assert store.list() == []
    assert not (store.root / "datasets" / digest).exists()
    with pytest.raises(DatasetNotFound, match="'cats:1' not found"):
        store.delete("cats", 1)


def test_delete_keeps_content_another_version_points_to(store: DataStore) -> None:
    digest, _ = _commit(store, "cats", {"x": b"same"})
    _commit(store, "felines", {"x": b"same"})
    store.delete("cats", 1)
    assert [s.ref for s in store.list()] == ["felines:1"]
    assert (store.resolve("felines").path / "x").read_bytes() == b"same"
    store.delete("felines", 1)
    assert not (store.root / "datasets" / digest).exists()


def test_a_deleted_version_number_is_never_given_again(store: DataStore) -> None:
    _commit(store, "cats", {"x": b"1"})
    _commit(store, "cats", {"x": b"2"})
    store.delete("cats", 2)
    assert store.resolve("cats").version == 1
    assert _commit(store, "cats", {"x": b"3"})[1] == 3
    with pytest.raises(DatasetNotFound, match="'cats:2' not found"):
        store.resolve("cats:2")


# -- concurrency ------------------------------------------------------------------------------


def _commit_after_barrier(root: str, index: int, barrier: threading.Barrier) -> None:
    store = DataStore(root)
    with store.staging() as staged:
        # even indexes share their content, so deduplication races too
        (staged / "x").write_bytes(b"shared" if index % 2 == 0 else f"own {index}".encode())
        barrier.wait(timeout=120)
        store.commit(staged, "race", _meta())


def _assert_versions_one_to(store: DataStore, count: int) -> None:
    stored = store.list()
    assert [s.version for s in stored] == list(range(1, count + 1))
    # one content per distinct payload: the shared one plus one per odd index
    assert len({s.digest for s in stored}) == 1 + count // 2
    assert len(list((store.root / "datasets").iterdir())) == 1 + count // 2
    assert [p for p in store.root.iterdir() if p.name.startswith(".staging-")] == []


def test_concurrent_processes_get_versions_one_to_n(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 4
    barrier = ctx.Barrier(count)
    store = DataStore(tmp_path / "data")
    procs = [
        ctx.Process(target=_commit_after_barrier, args=(str(store.root), i, barrier))
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * count
    _assert_versions_one_to(store, count)


def test_concurrent_threads_get_versions_one_to_n(store: DataStore) -> None:
    count = 16
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            _commit_after_barrier(str(store.root), index, barrier)
        except BaseException as exc:  # reported below, a thread cannot raise into the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    _assert_versions_one_to(store, count)


# -- modes ------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask")
def test_stored_data_is_world_readable_even_under_umask_077(store: DataStore) -> None:
    os.umask(0o077)
    digest, _ = _commit(store, "cats", {"x": b"1", "sub/y": b"2"})
    dataset = store.root / "datasets" / digest
    for directory in (
        store.root / "datasets",
        dataset,
        dataset / "content",
        dataset / "content" / "sub",
        store.root / "names",
        store.root / "names" / "cats",
    ):
        assert _mode(directory) == 0o755, directory
    for file in (
        dataset / "meta.json",
        dataset / "content" / "x",
        dataset / "content" / "sub" / "y",
        store.root / "names" / "cats" / "1",
    ):
        assert _mode(file) == 0o644, file
