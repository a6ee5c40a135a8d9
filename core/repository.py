"""Model repository on a file system: ``root/<name>/<version>/`` (version = 1, 2, 3, ...).

Publishing writes into a hidden temporary directory ``root/<name>/.tmp-<random>``, fsyncs it,
then renames it to ``root/<name>/<v>``. ``rename`` of a directory onto an existing non-empty
directory fails, so two publishers (processes or machines sharing the volume) racing for the
same ``v`` cannot both win: the loser retries with ``v + 1``. Readers never see a half-written
version; hidden (dot) directories are never listed.

Published versions are world-readable whatever the publisher's umask: files 0644, directories
0755 (the model directories publishing creates included). A version is a hand-off between
processes that may run as different users (a training worker writes, a server reads), and it
is immutable, so nobody but its owner may write it. Who may read models at all is decided by
the permissions of the repository root, which publishing never changes.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from core.durable import fsync_dir, fsync_tree
from core.errors import CnnError

#: Model names become directory names: no dot first (hidden directories are temp space), no
#: slashes, bounded length. The string is for ``pydantic.Field(pattern=...)``; Python code uses
#: MODEL_NAME_RE with ``fullmatch`` (``re.match`` would let ``$`` accept a trailing newline).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN)
MAX_PUBLISH_ATTEMPTS = 1000
#: Modes of what a published version contains.
PUBLISHED_FILE_MODE = 0o644
PUBLISHED_DIR_MODE = 0o755


class RepositoryError(CnnError, ValueError):
    """Invalid model name/version or a failed publish."""


def check_name(name: str) -> str:
    """Validate a model name: 1-64 of ``A-Z a-z 0-9 . _ -``, not starting with ``.``/``-``/``_``."""
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise RepositoryError(
            f"model name {name!r} is invalid: use 1-64 characters A-Z a-z 0-9 . _ -, starting "
            "with a letter or digit"
        )
    return name


class ModelRepository:
    """Versioned model directories under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Model names (sorted) that have at least one version directory."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and MODEL_NAME_RE.fullmatch(entry.name) and self.versions(entry.name)
        )

    def versions(self, name: str) -> list[int]:
        """Published versions of ``name``, ascending ([] if none)."""
        directory = self.root / check_name(name)
        if not directory.is_dir():
            return []
        out = []
        for entry in directory.iterdir():
            if entry.name.isdigit() and not entry.name.startswith("0") and entry.is_dir():
                out.append(int(entry.name))
        return sorted(out)

    def latest(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def path(self, name: str, version: int) -> Path:
        """Directory of ``name`` version ``version`` (not checked for existence)."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RepositoryError(f"model version must be an integer ≥ 1, got {version!r}")
        return self.root / check_name(name) / str(version)

    def publish(self, name: str, write: Callable[[Path], None]) -> int:
        """Create the next version of ``name``: ``write(tmp_dir)`` fills a hidden directory that
        is then fsynced and renamed into place. Returns the new version number.

        Raises:
            RepositoryError: invalid name, ``write`` produced no files, no free version found.
        """
        model_dir = self.root / check_name(name)
        if not model_dir.is_dir():
            model_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(model_dir, PUBLISHED_DIR_MODE)  # mkdir's mode is cut by the umask
        tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write(tmp)
            if not any(tmp.iterdir()):
                raise RepositoryError(f"publishing {name!r}: write() produced no files")
            make_readable(tmp)
            fsync_tree(tmp)
            version = (self.latest(name) or 0) + 1
            for _ in range(MAX_PUBLISH_ATTEMPTS):
                target = model_dir / str(version)
                try:
                    os.rename(tmp, target)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                        version = max(version + 1, (self.latest(name) or 0) + 1)
                        continue
                    raise
                fsync_dir(model_dir)
                return version
            raise RepositoryError(
                f"publishing {name!r}: no free version after {MAX_PUBLISH_ATTEMPTS} attempts"
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def make_readable(root: Path) -> None:
    """Give ``root`` and the directories under it mode 0755 and the regular files 0644.

    Symbolic links are left alone (``chmod`` would change their targets).
    """
    os.chmod(root, PUBLISHED_DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        for entry in dirnames:
            if not (directory / entry).is_symlink():
                os.chmod(directory / entry, PUBLISHED_DIR_MODE)
        for entry in filenames:
            if not (directory / entry).is_symlink():
                os.chmod(directory / entry, PUBLISHED_FILE_MODE)
