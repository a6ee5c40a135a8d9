"""One Numba compile cache per machine, keyed by the kernels' source content, not the clone's path.

Why: Numba (0.68) files a ``cache=True`` function under ``<cache root>/<dir name>_<sha1 of the
source file's absolute directory>/``, so a fresh clone (a new path) or a demo in a new work
directory never finds what another clone compiled, even for byte-identical kernels, and pays the
whole compile (22 s quiet / 117 s busy before a worker's first step). Its per-file freshness stamp
is already a content hash; only the directory is path-bound.

What: :class:`ContentKeyedLocator`, registered first in Numba's locator list by :func:`install`
(``core/kernels/__init__`` calls it before any kernel module is decorated), files every kernel
defined under ``core/`` in::

    <root>/cnn-<key>/core/kernels/...

- ``root``: ``NUMBA_CACHE_DIR`` when set (Docker, CI), else ``$XDG_CACHE_HOME/cnn-service/numba``
  (``~/.cache/cnn-service/numba``), shared by every clone and process of the user.
- ``key``: sha256 of every kernel source (all of ``core/kernels/`` plus any other ``core`` module
  that defines an ``njit`` function), by path relative to the repository and content, and of the
  Python, Numba, llvmlite and NumPy versions, the machine and the host CPU name. Different kernel
  sources give a different directory, so a clone never loads another revision's code -- not even
  through a callee in another file, which Numba's per-file stamp alone would miss. A kernel's
  compile-time constants must therefore live in a kernel source.

Numba's own checks still apply inside a directory (format version, the file's content stamp,
the function's bytecode, the CPU and its features), so a stale or foreign entry is recompiled,
never run. Concurrent writers: Numba writes files by rename, but its index update is
read-modify-write, and two processes saving different signatures of one function at once can
leave the index pointing at the other's data file; :func:`install` serialises saves into our
directories with an ``flock`` per directory (readers need no lock: files appear by rename, an
index entry is written before its data and a missing data file is a miss). A save that fails with
an ``OSError`` (full disk, a directory pruned under it) is logged and skipped: the code compiled
in memory still runs.

Old revisions' directories are removed by :func:`prune` (the worker warm-up calls it): it keeps
the most recently used ones and never removes one used in the last day.
``python -m core.kernels`` prints where the cache is; ``--prune`` prunes, ``--clear`` empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``core/`` and the repository root it sits in (paths in the key are relative to the latter).
CORE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = CORE_DIR.parent
#: Directory name prefix of a revision's cache inside the root.
PREFIX = "cnn-"
#: :func:`prune` keeps this many most recently used revision directories ...
KEEP_REVISIONS = 4
#: ... and never removes one used more recently than this (s).
KEEP_RECENT_S = 24 * 3600.0
_LOCK_NAME = ".write.lock"


def machine_root() -> Path:
    """The cache root: ``NUMBA_CACHE_DIR`` if set, else the user's cache directory."""
    explicit = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "cnn-service" / "numba").resolve()


def kernel_sources(core_dir: Path = CORE_DIR) -> list[Path]:
    """Every file whose content can change compiled kernel code, sorted."""
    found = set((core_dir / "kernels").rglob("*.py"))
    for path in core_dir.rglob("*.py"):
        if path not in found and "njit" in path.read_text(encoding="utf-8"):
            found.add(path)
    return sorted(found)


def _cpu_name() -> str:
    # Numba's own choice (NUMBA_CPU_NAME wins over the host's), as in its index key.
    from numba.core import config

    chosen = getattr(config, "CPU_NAME", None)
    if chosen:
        return str(chosen)
    import llvmlite.binding as llvm

    return str(llvm.get_host_cpu_name())


def compute_key(core_dir: Path = CORE_DIR) -> str:
    """16 hex digits naming this revision's kernels on this interpreter and CPU."""
    import llvmlite
    import numba
    import numpy

    digest = hashlib.sha256()
    toolchain = (
        sys.version,
        numba.__version__,
        llvmlite.__version__,
        numpy.__version__,
        platform.machine(),
        _cpu_name(),
    )
    digest.update(repr(toolchain).encode())
    for path in kernel_sources(core_dir):
        digest.update(path.relative_to(core_dir.parent).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def cache_key() -> str:
    """:func:`compute_key` for the code this process imported (computed once)."""
    return compute_key()


def revision_dir() -> Path:
    """Where this revision's kernels are cached: ``<root>/cnn-<key>``."""
    return machine_root() / f"{PREFIX}{cache_key()}"


def _is_ours(path: str) -> bool:
    return Path(path).resolve().is_relative_to(revision_dir())


def _locator_class() -> Any:
    from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin

    class ContentKeyedLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
        """Numba cache locator for functions defined under ``core/``: see the module doc."""

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            relative = Path(py_file).resolve().parent.relative_to(REPO_DIR)
            self._cache_path = str(revision_dir() / relative)

        def get_cache_path(self) -> str:
            return self._cache_path

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not Path(py_file).resolve().is_relative_to(CORE_DIR):
                return None  # someone else's function: Numba's own locators
            return super().from_function(py_func, py_file)

    return ContentKeyedLocator


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created, with its directory, if
    missing): holders of one lock file take turns, across processes."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: Numba's unlocked behaviour
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def directory_lock(directory: str | Path) -> contextlib.AbstractContextManager[None]:
    """:func:`file_lock` on ``<directory>/.write.lock``: writers into one directory take turns."""
    return file_lock(os.path.join(directory, _LOCK_NAME))


_installed: Any = None


def install() -> Any:
    """Register the locator and the locked save with Numba (idempotent); returns the locator.

    Must run before the kernel modules are imported: Numba picks a function's locator when it
    is decorated.
    """
    global _installed
    if _installed is not None:
        return _installed
    from numba.core.caching import CacheImpl, IndexDataCacheFile

    locator = _locator_class()
    CacheImpl._locator_classes.insert(0, locator)
    original_save = IndexDataCacheFile.save

    def save(self: Any, key: Any, data: Any) -> None:
        if not _is_ours(self._cache_path):
            original_save(self, key, data)
            return
        try:
            with directory_lock(self._cache_path):
                original_save(self, key, data)
        except OSError as exc:
            log.warning("could not save a compiled kernel to %s: %s", self._cache_path, exc)

    IndexDataCacheFile.save = save  # type: ignore[method-assign]
    _installed = locator
    with contextlib.suppress(OSError):
        # Marks the revision as used, for prune (a read-only root just means no cache).
        directory = revision_dir()
        directory.mkdir(parents=True, exist_ok=True)
        os.utime(directory)
    return locator


def revisions(root: Path | None = None) -> list[Path]:
    """Revision directories in the root, most recently used first."""
    root = machine_root() if root is None else root
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def prune(
    root: Path | None = None, *, keep: int = KEEP_REVISIONS, recent_s: float = KEEP_RECENT_S
) -> list[Path]:
    """Remove old revisions' directories; returns those removed.

    Keeps the current revision, the ``keep`` most recently used, and any used in the last
    ``recent_s`` seconds (another clone may be running it).
    """
    current = revision_dir()
    now = time.time()
    removed = []
    for index, path in enumerate(revisions(root)):
        if index < keep or path == current or now - path.stat().st_mtime < recent_s:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def kernel_stats() -> dict[str, dict[str, Any]]:
    """Per kernel imported in this process (``module.function``): signatures ``compiled`` and
    ``loaded`` from the cache, seconds spent compiling (``compile_s``, callees included) and
    whether it is a ``parallel`` kernel.
    """
    from numba.core.registry import CPUDispatcher

    stats: dict[str, dict[str, Any]] = {}
    for name, module in sorted(sys.modules.items()):
        if not name.startswith("core.") or module is None:
            continue
        for attr, value in sorted(vars(module).items()):
            if not isinstance(value, CPUDispatcher) or value.__module__ != name:
                continue
            counts = value.stats
            compile_s = 0.0
            for overload in value.overloads.values():
                timers = (getattr(overload, "metadata", None) or {}).get("timers", {})
                compile_s += float(timers.get("compiler_lock", 0.0))
            stats[f"{name}.{attr}"] = {
                "parallel": bool(value.targetoptions.get("parallel")),
                "compiled": sum(counts.cache_misses.values()),
                "loaded": sum(counts.cache_hits.values()),
                "compile_s": round(compile_s, 3),
            }
    return stats


def size_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
