"""Version lifecycle of a model, kept in the model repository: ``root/<name>/policy.json``.

Every serving process (and every replica sharing the volume) reads the file on each repository
scan, so the state lives on disk, not in one process's memory. The file holds the model-level
state (``loaded`` / ``unloaded``) and the version policy (Triton's: ``latest N``, ``specific
[v, ...]``, ``all``; absent = the server's default, latest ``CNN_MAX_VERSIONS``). It is
replaced atomically (temp file, fsync, rename) with mode 0644, like a published version: any
process may read it whatever its user.

Writers (the lifecycle RPCs of any process on this host) hold an exclusive ``flock`` on
``root/<name>/.lifecycle.lock`` for read-modify-write, so a policy change and a delete of the
version it names cannot interleave. ``flock`` is advisory and per host: replicas on other hosts
sharing the volume are not serialised against each other (the last write wins).

A deleted version is renamed to a hidden ``root/<name>/.trash-<v>-<random>`` first (one atomic
rename: a scan sees the whole version or none of it), then removed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.durable import atomic_write_bytes, fsync_dir
from core.errors import CnnError
from core.repository import PUBLISHED_FILE_MODE, check_name

POLICY_FILE = "policy.json"
LOCK_FILE = ".lifecycle.lock"
TRASH_PREFIX = ".trash-"

State = Literal["loaded", "unloaded"]
LOADED: State = "loaded"
UNLOADED: State = "unloaded"


class LifecycleError(CnnError, ValueError):
    """A lifecycle file that cannot be read, or a policy that is not valid."""


class VersionPolicy(BaseModel):
    """Which published versions of a model are served.

    ``latest``: the newest ``num_versions``; ``specific``: exactly ``versions`` (those that
    exist); ``all``: every version. The server caps any selection at its
    ``CNN_MAX_SERVED_VERSIONS`` newest.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["latest", "specific", "all"]
    num_versions: int | None = None
    versions: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _fields_match_kind(self) -> VersionPolicy:
        if self.kind == "latest":
            if self.num_versions is None or self.num_versions < 1 or self.versions:
                raise ValueError("latest: num_versions >= 1 and no versions")
        elif self.kind == "specific":
            if self.num_versions is not None or not self.versions:
                raise ValueError("specific: at least one version and no num_versions")
            if any(v < 1 for v in self.versions) or list(self.versions) != sorted(
                set(self.versions)
            ):
                raise ValueError("specific: versions must be >= 1, ascending, unique")
        elif self.num_versions is not None or self.versions:
            raise ValueError("all: neither num_versions nor versions")
        return self

    @classmethod
    def latest(cls, num_versions: int) -> VersionPolicy:
        return cls(kind="latest", num_versions=num_versions)

    @classmethod
    def specific(cls, versions: Sequence[int]) -> VersionPolicy:
        return cls(kind="specific", versions=tuple(sorted(set(versions))))

    @classmethod
    def all(cls) -> VersionPolicy:
        return cls(kind="all")

    def select(self, available: Sequence[int], cap: int) -> list[int]:
        """The versions of ``available`` this policy serves, ascending, at most ``cap`` (the
        newest)."""
        ordered = sorted(available)
        if self.kind == "latest":
            chosen = ordered[-(self.num_versions or 1) :]
        elif self.kind == "specific":
            chosen = [v for v in ordered if v in self.versions]
        else:
            chosen = ordered
        return chosen[-cap:]

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "specific":
            return "specific [" + ", ".join(map(str, self.versions)) + "]"
        return "all"


class ModelLifecycle(BaseModel):
    """The content of ``policy.json``: model state and version policy (None = the default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: State = LOADED
    policy: VersionPolicy | None = None


def policy_path(root: Path, name: str) -> Path:
    return Path(root) / check_name(name) / POLICY_FILE


def read_lifecycle(root: Path, name: str) -> ModelLifecycle:
    """The model's lifecycle; the default (loaded, default policy) when it has no file.

    Raises:
        LifecycleError: the file exists but is not a valid lifecycle document (the message
            names the file within the repository and the first error).
    """
    path = policy_path(root, name)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return ModelLifecycle()
    try:
        return ModelLifecycle.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "document"
        raise LifecycleError(
            f"{name}/{POLICY_FILE} is invalid at {where}: {first['msg']}"
        ) from None


def write_lifecycle(root: Path, name: str, lifecycle: ModelLifecycle) -> None:
    """Replace the model's ``policy.json`` atomically (mode 0644, fsynced)."""
    path = policy_path(root, name)
    data = lifecycle.model_dump_json(indent=2).encode() + b"\n"
    atomic_write_bytes(path, data, mode=PUBLISHED_FILE_MODE)


@contextmanager
def locked(root: Path, name: str) -> Iterator[None]:
    """Hold the model's lifecycle lock (exclusive ``flock``, this host) for a read-modify-write."""
    path = Path(root) / check_name(name) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PUBLISHED_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def trash_version(root: Path, name: str, version: int) -> None:
    """Remove ``root/name/version``: one rename to a hidden trash directory (scans see the
    version whole or not at all), then delete the trash, and any older trash a crash left."""
    model_dir = Path(root) / check_name(name)
    trash = model_dir / f"{TRASH_PREFIX}{version}-{uuid.uuid4().hex}"
    os.rename(model_dir / str(version), trash)
    fsync_dir(model_dir)
    for entry in model_dir.iterdir():
        if entry.name.startswith(TRASH_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
