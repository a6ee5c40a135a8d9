"""Durable writes: file data and directory entries forced to disk before anyone relies on them.

A new file's bytes are durable once the file is fsynced; a rename (or a new entry) is atomic
at once but durable only once the directory holding it is fsynced. Some file systems refuse
fsync on a directory (EINVAL, EBADF): nothing more can be done there, so that is not an error.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

# What a file system says when it does not support fsync on this kind of file.
_FSYNC_UNSUPPORTED = (errno.EINVAL, errno.EBADF)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Force the data of the regular file ``path`` to disk."""
    _fsync(path, 0)


def fsync_dir(path: Path) -> None:
    """Force the entries of directory ``path`` (new files, renames into it) to disk."""
    _fsync(path, os.O_DIRECTORY)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (``root`` included), files first."""
    for dirpath, _, filenames in os.walk(root):
        directory = Path(dirpath)
        for filename in filenames:
            fsync_file(directory / filename)
        fsync_dir(directory)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data``: a temp file in the same directory, fsync, rename, then
    fsync the directory. Readers see the old content or the new, never a part.

    The file gets the mode a plain ``open(path, "wb")`` would give it, 0666 less the process
    umask (0644 under the usual 022), not ``tempfile.mkstemp``'s private 0600; or exactly
    ``mode`` whatever the umask, when given (files other processes must read).
    """
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # the umask cut the open() mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
