"""Content-addressed data store: uploaded data sets, immutable, named and versioned.

Layout under ``root`` (the data volume workers and servers share)::

    datasets/<digest>/content/...   the data set's files, exactly as staged
    datasets/<digest>/meta.json     DatasetMeta of the content
    names/<name>/<version>          a text file holding <digest> (versions 1, 2, 3, ...)
    names/<name>/<version>.deleted  a deleted version: its number is never given again
    .staging-<random>/              uploads in progress, commits and deletes under way
    .lock                           serialises deletes against commits (``flock``)

What ``content/`` holds for an upload of the Datasets API (``server.uploads``):

- an ``.npz`` upload: the file itself, ``content/data.npz`` (``meta.format == "npz"``);
- an image-folder archive: its images as :func:`core.ingest.extract_archive` writes them,
  ``content/train/<class>/<n>.png|.jpg`` (``<n>`` six digits in archive order, suffix by
  content), plus ``content/test/<class>/...`` when the archive had a train/test split
  (``meta.format == "images"``; ``meta.train_samples``/``test_samples`` set only then). An
  archive without a split has ``train/`` alone: the loader holds out the test split itself.
  Class ``k`` is ``meta.classes[k]`` (sorted folder names).

The digest is the SHA-256 of the staged tree, fed as follows, entries in ascending order of
their relative path as bytes (``os.fsencode``, ``/`` as separator)::

    directory: b"d" + u64(len(path)) + path
    file:      b"f" + u64(len(path)) + path + u64(size) + bytes

``u64`` is 8 bytes big-endian. Lengths make the stream unambiguous, so two trees have the same
digest exactly when they hold the same paths with the same bytes; modes and times do not count.

A commit fills ``.staging-<random>/content`` and ``meta.json``, fsyncs them and renames the
directory to ``datasets/<digest>``: readers see all of a data set or nothing. If that digest
is already stored the staged copy is discarded (the first ``meta.json`` stays: the content,
and so every statistic derived from it, is the same). The version is then claimed by
hard-linking a complete, fsynced file to ``names/<name>/<v>``; ``link`` fails when the name
exists, so two committers (processes or machines on the shared volume) racing for ``v`` cannot
both win and the loser tries ``v + 1``. An interrupted commit leaves at most a hidden staging
directory or content no name points to; neither is listed, and
:meth:`DataStore.clean_stale_staging` removes both.

Readers take no lock. Commits hold a shared ``flock`` from storing the content to claiming
the name, deletes an exclusive one, so a delete never removes content that a commit has just
deduplicated against but not yet named.

Stored files are world-readable (0644, directories 0755) whatever the writer's umask, like
published model versions (:mod:`core.repository`); the permissions of ``root`` are left to
the operator.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import hashlib
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.datasets import MAX_CHANNELS, MAX_CLASSES, Normalisation
from core.durable import atomic_write_bytes, fsync_dir, fsync_file, fsync_tree
from core.errors import DatasetError
from core.repository import MODEL_NAME_RE, PUBLISHED_DIR_MODE, PUBLISHED_FILE_MODE, make_readable

if TYPE_CHECKING:
    from core.ingest import DatasetSummary

DATASETS_DIR = "datasets"
NAMES_DIR = "names"
CONTENT_DIR = "content"
META_JSON = "meta.json"
STAGING_PREFIX = ".staging-"
LOCK_FILE = ".lock"
TOMBSTONE_SUFFIX = ".deleted"
MAX_CLAIM_ATTEMPTS = 1000
#: How many stored names a DatasetNotFound message lists before "...".
MAX_NAMES_IN_ERROR = 20

DIGEST_RE = re.compile(r"[0-9a-f]{64}")
#: What reads as a digest in a reference (case-insensitive), so no name may look like it.
_DIGEST_LIKE_RE = re.compile(r"[0-9a-fA-F]{64}")
DIGEST_PREFIX = "sha256:"
_VERSION_RE = re.compile(r"[1-9][0-9]{0,17}")
_CHUNK = 1 << 20


class DataStoreError(DatasetError):
    """An invalid name, version, reference or staging directory, or a store in a bad state."""


class DatasetNotFound(DataStoreError):
    """A reference names no stored data set; the message says what exists."""


class DatasetMeta(BaseModel):
    """What is known about a stored data set, computed once when it is uploaded.

    Image sizes are ranges in pixels (``min_height == max_height`` and ``min_width ==
    max_width`` when every image has the same size). ``mean``/``std`` are per channel, in the
    native pixel units (0..255 for uint8), over all samples. ``train_samples`` and
    ``test_samples`` are both set when the data came with a train/test split, else both None.

    A regression data set (``task="regression"``, an ``.npz`` with float ``y``) has no classes:
    ``classes`` and ``class_counts`` are empty, ``targets`` names its K targets and
    ``target_mean``/``target_std`` are their per-target statistics over all samples.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["npz", "images"]
    samples: int = Field(ge=1)
    classes: tuple[str, ...] = Field(max_length=MAX_CLASSES)
    class_counts: tuple[int, ...]
    channels: int = Field(ge=1, le=MAX_CHANNELS)
    min_height: int = Field(ge=1)
    max_height: int = Field(ge=1)
    min_width: int = Field(ge=1)
    max_width: int = Field(ge=1)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_samples: int | None = Field(default=None, ge=0)
    test_samples: int | None = Field(default=None, ge=0)
    created_at: datetime
    source: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0)
    task: Literal["classification", "regression"] = "classification"
    targets: tuple[str, ...] = Field(default=(), max_length=MAX_CLASSES)
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()

    @property
    def num_outputs(self) -> int:
        """What a model's last layer must give: one score per class, or one per target."""
        return len(self.targets) if self.task == "regression" else len(self.classes)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetMeta:
        if self.task == "regression":
            if self.classes or self.class_counts:
                raise ValueError("a regression data set has no classes or class_counts")
            k = len(self.targets)
            if k < 1 or len(self.target_mean) != k or len(self.target_std) != k:
                raise ValueError(
                    f"a regression data set needs targets (>= 1) with one target_mean and "
                    f"target_std each: {k} targets, {len(self.target_mean)} means, "
                    f"{len(self.target_std)} stds"
                )
            if not all(math.isfinite(v) for v in self.target_mean + self.target_std):
                raise ValueError("target_mean and target_std must be finite")
        elif not self.classes or self.targets or self.target_mean or self.target_std:
            raise ValueError("a classification data set needs classes and has no targets")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {list(self.classes)}")
        if len(self.class_counts) != len(self.classes):
            raise ValueError(
                f"class_counts needs one count per class: {len(self.classes)} classes, "
                f"{len(self.class_counts)} counts"
            )
        counted = self.task == "classification"
        if any(count < 0 for count in self.class_counts) or (
            counted and sum(self.class_counts) != self.samples
        ):
            raise ValueError(
                f"class_counts must be ≥ 0 and sum to samples={self.samples}, "
                f"got {list(self.class_counts)}"
            )
        for field in ("height", "width"):
            low, high = getattr(self, f"min_{field}"), getattr(self, f"max_{field}")
            if low > high:
                raise ValueError(f"min_{field}={low} exceeds max_{field}={high}")
        for field in ("mean", "std"):
            values = getattr(self, field)
            if len(values) != self.channels:
                raise ValueError(
                    f"{field} needs one value per channel: channels={self.channels}, "
                    f"got {len(values)} values"
                )
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{field} must be finite, got {list(values)}")
        if any(s < 0 for s in self.std):
            raise ValueError(f"std must be ≥ 0, got {list(self.std)}")
        if (self.train_samples is None) != (self.test_samples is None):
            raise ValueError("train_samples and test_samples must both be given or both be None")
        if (
            self.train_samples is not None
            and self.test_samples is not None
            and self.train_samples + self.test_samples != self.samples
        ):
            raise ValueError(
                f"train_samples={self.train_samples} + test_samples={self.test_samples} "
                f"must equal samples={self.samples}"
            )
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must carry a time zone (UTC)")
        return self

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` when all images share one size, else None."""
        if self.min_height == self.max_height and self.min_width == self.max_width:
            return self.min_height, self.min_width
        return None

    def normalisation(self) -> Normalisation:
        """The data set's per-channel statistics as a model's input normalisation.

        Raises:
            ValueError: a channel is constant (std 0), which cannot be normalised.
        """
        return Normalisation(mean=list(self.mean), std=list(self.std))

    @classmethod
    def from_summary(cls, summary: DatasetSummary, source: str, size_bytes: int) -> DatasetMeta:
        """The stored metadata of an upload that `core.ingest` checked and summarised."""
        splits = summary.splits
        return cls(
            format="npz" if summary.format == "npz" else "images",
            samples=summary.samples,
            classes=summary.classes,
            class_counts=tuple(summary.class_counts[name] for name in summary.classes),
            channels=summary.channels,
            min_height=summary.min_height,
            max_height=summary.max_height,
            min_width=summary.min_width,
            max_width=summary.max_width,
            mean=summary.mean,
            std=summary.std,
            train_samples=splits["train"] if splits else None,
            test_samples=splits["test"] if splits else None,
            created_at=cls.now(),
            source=source,
            size_bytes=size_bytes,
            task=summary.task,
            targets=summary.targets,
            target_mean=summary.target_mean,
            target_std=summary.target_std,
        )

    @staticmethod
    def now() -> datetime:
        """The current time in UTC, for ``created_at``."""
        return datetime.now(UTC)


@dataclass(frozen=True)
class StoredDataset:
    """One version of a named data set; ``path`` is its (read-only) content directory."""

    name: str
    version: int
    digest: str
    meta: DatasetMeta
    path: Path

    @property
    def ref(self) -> str:
        """``name:version``, the form :meth:`DataStore.resolve` accepts."""
        return f"{self.name}:{self.version}"


def check_dataset_name(name: str) -> str:
    """Validate a data set name: the model-name rule, and not a digest (that would be ambiguous).

    Raises:
        DataStoreError: naming the rule broken.
    """
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise DataStoreError(
            f"data set name {name!r} is invalid: use 1-64 characters A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    if _DIGEST_LIKE_RE.fullmatch(name):
        raise DataStoreError(
            f"data set name {name!r} is invalid: 64 hex digits would read as a sha256 digest"
        )
    return name


def check_version(version: object) -> int:
    """Validate a data set version: an integer ≥ 1."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataStoreError(f"data set version must be an integer ≥ 1, got {version!r}")
    return version


def content_digest(root: Path) -> str:
    """SHA-256 of the tree under ``root`` as the module docstring defines it (hex, lowercase).

    Raises:
        DataStoreError: the tree holds something other than directories and regular files
            (a symbolic link, a device, a socket), or no file at all.
    """
    entries: builtins.list[tuple[bytes, Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        for name in dirnames + filenames:
            path = directory / name
            is_dir = name in dirnames and not path.is_symlink()
            if not is_dir and (path.is_symlink() or not path.is_file()):
                raise DataStoreError(
                    f"staged entry {path.relative_to(root)} is not a regular file or directory"
                )
            entries.append((os.fsencode(path.relative_to(root).as_posix()), path, is_dir))
    if not any(not is_dir for _, _, is_dir in entries):
        raise DataStoreError(f"staging directory {root} holds no file: nothing to commit")
    digest = hashlib.sha256()
    for relative, path, is_dir in sorted(entries, key=lambda entry: entry[0]):
        digest.update((b"d" if is_dir else b"f") + len(relative).to_bytes(8, "big") + relative)
        if is_dir:
            continue
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


class DataStore:
    """Data sets under ``root``; see the module docstring for the layout and guarantees."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A new hidden directory under ``root`` to write an upload into, then :meth:`commit`.

        The directory is removed when the block ends, however it ends; after a commit there is
        nothing left to remove. A killed process leaves it behind for
        :meth:`clean_stale_staging`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        staged = self._new_staging_dir()
        try:
            yield staged
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def commit(self, staged: Path, name: str, meta: DatasetMeta) -> StoredDataset:
        """Store the content of ``staged`` (from :meth:`staging`) as the next version of ``name``.

        Returns:
            The new version; its ``digest`` may be one already stored (deduplicated).

        Raises:
            DataStoreError: invalid name, ``staged`` not a staging directory of this store,
                holding no file or something other than files and directories.
        """
        check_dataset_name(name)
        staged = Path(staged)
        if staged.parent != self.root or not staged.name.startswith(STAGING_PREFIX):
            raise DataStoreError(
                f"staged directory {staged} was not made by staging() of the store at {self.root}"
            )
        if not staged.is_dir():
            raise DataStoreError(f"staged directory {staged} does not exist (committed already?)")
        digest = content_digest(staged)
        # The content moves into a fresh wrapper beside meta.json, so that one rename
        # publishes both; the wrapper is hidden staging space until then.
        wrapper = self._new_staging_dir()
        try:
            os.rename(staged, wrapper / CONTENT_DIR)
            atomic_write_bytes(wrapper / META_JSON, meta.model_dump_json(indent=2).encode())
            make_readable(wrapper)
            fsync_tree(wrapper)
            with self._lock(fcntl.LOCK_SH):
                self._store_content(wrapper, digest)
                version = self._claim_version(name, digest)
                # read back under the lock: no delete can remove it first, and a deduplicated
                # commit reports the meta that is stored, not the one it brought
                return self._stored(name, version, digest)
        finally:
            shutil.rmtree(wrapper, ignore_errors=True)  # gone already unless deduplicated

    def delete(self, name: str, version: int) -> None:
        """Remove ``name:version``; remove its content too when no other version points to it.

        The version number stays taken (``<version>.deleted``), so a reference never means two
        different data sets. The content disappears by one rename into staging space, so a
        reader sees it whole or not at all. A job that resolved the digest earlier and reads
        the content after a delete finds it gone.

        Raises:
            DatasetNotFound: no such version.
        """
        check_dataset_name(name)
        check_version(version)
        entry = self.root / NAMES_DIR / name / str(version)
        if not entry.is_file():
            raise self._not_found(f"{name}:{version}")
        with self._lock(fcntl.LOCK_EX):
            digest = self._read_entry(entry) if entry.is_file() else None
            if digest is None:
                raise self._not_found(f"{name}:{version}")
            os.rename(entry, entry.with_name(entry.name + TOMBSTONE_SUFFIX))
            fsync_dir(entry.parent)
            if not any(other == digest for _, _, other in self._entries()):
                self._remove_content(digest)

    def clean_stale_staging(self, max_age_s: float) -> builtins.list[Path]:
        """Remove what interrupted commits left: staging directories in which nothing changed
        for ``max_age_s`` seconds, and content no name points to. Returns what was removed.

        Content without a name is removed whatever its age: under the exclusive lock no commit
        is between storing content and naming it, so nothing will name it.
        """
        if not self.root.is_dir():
            return []
        removed: builtins.list[Path] = []
        cutoff = time.time() - max_age_s
        for path in sorted(self.root.glob(f"{STAGING_PREFIX}*")):
            if path.is_dir() and _newest_mtime(path) < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        datasets = self.root / DATASETS_DIR
        if datasets.is_dir():
            with self._lock(fcntl.LOCK_EX):
                named = {digest for _, _, digest in self._entries()}
                for path in sorted(datasets.iterdir()):
                    if DIGEST_RE.fullmatch(path.name) and path.name not in named:
                        self._remove_content(path.name)
                        removed.append(path)
        return removed

    # -- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str | tuple[str, int]) -> StoredDataset:
        """Find a data set by ``"name"`` (its newest version), ``"name:version"``,
        ``(name, version)``, or a digest (64 hex digits, optionally ``"sha256:"`` first).

        A digest resolves to the first ``name:version`` (by name, then version) pointing to it.

        Raises:
            DataStoreError: the reference is malformed.
            DatasetNotFound: nothing stored matches; the message lists what is stored.
        """
        if isinstance(ref, tuple):
            if len(ref) != 2:
                raise DataStoreError(f"data set reference {ref!r} must be (name, version)")
            name, version = check_dataset_name(ref[0]), check_version(ref[1])
            return self._resolve_version(name, version, asked=f"{name}:{version}")
        if not isinstance(ref, str):
            raise DataStoreError(f"data set reference must be a string, got {ref!r}")
        digest = ref.removeprefix(DIGEST_PREFIX).lower()
        if _DIGEST_LIKE_RE.fullmatch(digest):
            for entry_name, entry_version, entry_digest in self._entries():
                if entry_digest == digest:
                    return self._stored(entry_name, entry_version, digest)
            raise self._not_found(ref)
        name, colon, version_text = ref.partition(":")
        check_dataset_name(name)
        if not colon:
            versions = self.versions(name)
            if not versions:
                raise self._not_found(ref)
            return self._resolve_version(name, versions[-1], asked=ref)
        if not _VERSION_RE.fullmatch(version_text):
            raise DataStoreError(
                f"data set reference {ref!r}: the version after ':' must be an integer ≥ 1"
            )
        return self._resolve_version(name, int(version_text), asked=ref)

    def versions(self, name: str) -> builtins.list[int]:
        """Live versions of ``name``, ascending ([] if none)."""
        directory = self.root / NAMES_DIR / check_dataset_name(name)
        if not directory.is_dir():
            return []
        return sorted(int(p.name) for p in directory.iterdir() if _VERSION_RE.fullmatch(p.name))

    def list(self) -> builtins.list[StoredDataset]:
        """Every live version of every name, by name then version."""
        return [self._stored(name, version, digest) for name, version, digest in self._entries()]

    # -- internals -------------------------------------------------------------------------

    def _new_staging_dir(self) -> Path:
        path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        path.mkdir()
        return path

    @contextmanager
    def _lock(self, operation: int) -> Iterator[None]:
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, PUBLISHED_FILE_MODE)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _store_content(self, wrapper: Path, digest: str) -> None:
        """Rename ``wrapper`` to ``datasets/<digest>`` unless that digest is stored already."""
        datasets = _make_shared_dir(self.root / DATASETS_DIR)
        try:
            os.rename(wrapper, datasets / digest)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            return  # deduplicated: the caller discards the wrapper
        fsync_dir(datasets)

    def _claim_version(self, name: str, digest: str) -> int:
        """Point the lowest free version of ``name`` at ``digest``; return that version."""
        directory = _make_shared_dir(_make_shared_dir(self.root / NAMES_DIR) / name)
        tmp = directory / f".tmp-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PUBLISHED_FILE_MODE)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(digest + "\n")
            os.chmod(tmp, PUBLISHED_FILE_MODE)  # os.open's mode is cut by the umask
            fsync_file(tmp)
            version = self._highest_version_ever(directory) + 1
            for _ in range(MAX_CLAIM_ATTEMPTS):
                try:
                    os.link(tmp, directory / str(version))
                except FileExistsError:
                    version = max(version, self._highest_version_ever(directory)) + 1
                    continue
                fsync_dir(directory)
                return version
            raise DataStoreError(
                f"committing {name!r}: no free version after {MAX_CLAIM_ATTEMPTS} attempts"
            )
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _highest_version_ever(directory: Path) -> int:
        """The highest version of a name, live or deleted (0 if none)."""
        numbers = [
            int(number)
            for p in directory.iterdir()
            if _VERSION_RE.fullmatch(number := p.name.removesuffix(TOMBSTONE_SUFFIX))
        ]
        return max(numbers, default=0)

    def _entries(self) -> Iterator[tuple[str, int, str]]:
        """``(name, version, digest)`` of every live index entry, by name then version."""
        names = self.root / NAMES_DIR
        if not names.is_dir():
            return
        for directory in sorted(names.iterdir()):
            if not (_is_dataset_name(directory.name) and directory.is_dir()):
                continue
            for version in self.versions(directory.name):
                digest = self._read_entry(directory / str(version))
                if digest is not None:
                    yield directory.name, version, digest

    @staticmethod
    def _read_entry(entry: Path) -> str | None:
        """The digest an index entry holds; None if it vanished (deleted meanwhile)."""
        try:
            text = entry.read_text().strip()
        except FileNotFoundError:
            return None
        if not DIGEST_RE.fullmatch(text):
            raise DataStoreError(f"index entry {entry} does not hold a sha256 digest: {text!r}")
        return text

    def _resolve_version(self, name: str, version: int, asked: str) -> StoredDataset:
        digest = self._read_entry(self.root / NAMES_DIR / name / str(version))
        if digest is None:
            raise self._not_found(asked)
        return self._stored(name, version, digest)

    def _stored(self, name: str, version: int, digest: str) -> StoredDataset:
        directory = self.root / DATASETS_DIR / digest
        try:
            meta = DatasetMeta.model_validate_json((directory / META_JSON).read_bytes())
        except FileNotFoundError:
            raise self._not_found(f"{name}:{version}") from None
        return StoredDataset(name, version, digest, meta, directory / CONTENT_DIR)

    def _remove_content(self, digest: str) -> None:
        """Hide ``datasets/<digest>`` by one rename, then delete it."""
        doomed = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(self.root / DATASETS_DIR / digest, doomed)
        except FileNotFoundError:
            return
        fsync_dir(self.root / DATASETS_DIR)
        shutil.rmtree(doomed, ignore_errors=True)

    def _not_found(self, asked: str) -> DatasetNotFound:
        stored: dict[str, builtins.list[int]] = {}
        for name, version, _ in self._entries():
            stored.setdefault(name, []).append(version)
        if not stored:
            return DatasetNotFound(f"data set {asked!r} not found: the store is empty")
        shown = [
            f"{name} (versions {', '.join(map(str, versions))})"
            for name, versions in list(stored.items())[:MAX_NAMES_IN_ERROR]
        ]
        more = ", ..." if len(stored) > MAX_NAMES_IN_ERROR else ""
        return DatasetNotFound(f"data set {asked!r} not found; stored: {', '.join(shown)}{more}")


def _is_dataset_name(text: str) -> bool:
    return bool(MODEL_NAME_RE.fullmatch(text)) and not _DIGEST_LIKE_RE.fullmatch(text)


def _make_shared_dir(path: Path) -> Path:
    """``mkdir path`` if missing (its parent must exist); a directory made here gets 0755,
    since mkdir's mode is cut by the umask."""
    try:
        path.mkdir()
    except FileExistsError:
        return path
    os.chmod(path, PUBLISHED_DIR_MODE)
    return path


def _newest_mtime(root: Path) -> float:
    """The latest modification time of ``root`` or anything under it (symbolic links not
    followed): an upload still being written keeps touching some file."""
    newest = root.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
            except FileNotFoundError:
                continue
    return newest
