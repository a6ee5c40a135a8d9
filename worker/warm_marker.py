"""The warm-up's "done" marker: lets a worker on a warm compile cache skip the warm-up process.

Why: on a warm per-machine cache the warm-up (``python -m worker.warmup``) compiles nothing, yet
costs a new worker an interpreter, the imports and loading every kernel it exercises (12 s of a
20.9 s start under load), only to learn that the cache was already warm.

What: when a warm-up finishes it writes ``warmup.json`` into the compile cache's revision
directory (:func:`core.kernels.compile_cache.revision_dir`, itself keyed by the kernel sources,
the toolchain versions and the CPU). The marker names a key (:func:`marker_key`) over:

- the compile cache's key (kernel sources, Python/Numba/llvmlite/NumPy versions, CPU), and
- the content of every other module under ``core/`` and of the warm-up itself: a change to a
  layer, the inference plan or the warm-up's recipe may call kernels with new signatures, so
  the warm-up runs again after any such change.

A worker (and a ``python -m worker.warmup`` without ``--force``) that finds a marker with its own
key skips the warm-up; a missing, corrupt (checked by a pydantic model, never unpickled), stale
or foreign marker (another key) is ignored and the warm-up runs. ``python -m core.kernels
--clear`` removes it with the kernels. If some compiled kernels vanished from under a valid marker
(a hand-pruned cache), a job just compiles what it misses, as with no warm-up.

Concurrent workers: the warm-up runs under an ``flock`` on the revision directory's
``.warmup.lock`` (:func:`warmup_lock`) and checks the marker again once it holds it, so a worker
starting while another warms waits for it and then skips instead of warming a second time; the
marker itself is written atomically (:func:`core.durable.atomic_write_bytes`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError

log = logging.getLogger(__name__)

FILE_NAME = "warmup.json"
FORMAT = 1
_LOCK_NAME = ".warmup.lock"
_WARMUP_SOURCES = ("warmup.py", "warm_marker.py")


class Marker(BaseModel):
    """The marker file's content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: StrictInt
    key: StrictStr
    finished_at: StrictFloat  # Unix time
    compiled: StrictInt  # signatures the warm-up compiled (0 when the cache was warm)
    loaded: StrictInt  # signatures it loaded from the cache


def compute_marker_key(core_dir: Path | None = None, worker_dir: Path | None = None) -> str:
    """16 hex digits: the compile cache's key plus every ``core`` and warm-up source."""
    from core.kernels import compile_cache

    core_dir = compile_cache.CORE_DIR if core_dir is None else core_dir
    worker_dir = Path(__file__).resolve().parent if worker_dir is None else worker_dir
    digest = hashlib.sha256(compile_cache.compute_key(core_dir).encode())
    sources = sorted(core_dir.rglob("*.py")) + [worker_dir / name for name in _WARMUP_SOURCES]
    for path in sources:
        digest.update(path.relative_to(core_dir.parent).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def marker_key() -> str:
    """:func:`compute_marker_key` for the code this process runs (computed once)."""
    return compute_marker_key()


def marker_path() -> Path:
    """``<compile cache revision directory>/warmup.json``."""
    from core.kernels import compile_cache

    return compile_cache.revision_dir() / FILE_NAME


def read_marker(path: Path | None = None) -> Marker | None:
    """The marker if it is valid for this code and machine, else None (the reason logged)."""
    path = marker_path() if path is None else path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ignoring warm-up marker %s: %s", path, exc)
        return None
    try:
        marker = Marker.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ignoring warm-up marker %s: not a valid marker (%s)", path, exc)
        return None
    if marker.format != FORMAT or marker.key != marker_key():
        log.info(
            "ignoring warm-up marker %s: key %s, this code's is %s (stale or foreign)",
            path,
            marker.key,
            marker_key(),
        )
        return None
    return marker


def write_marker(compiled: int, loaded: int, path: Path | None = None) -> Path:
    """Record that a warm-up of this code finished (atomic; readable by every process)."""
    from core.durable import atomic_write_bytes

    path = marker_path() if path is None else path
    marker = Marker(
        format=FORMAT, key=marker_key(), finished_at=time.time(), compiled=compiled, loaded=loaded
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(marker.model_dump()).encode() + b"\n", mode=0o644)
    return path


@contextlib.contextmanager
def warmup_lock() -> Iterator[None]:
    """One warm-up at a time per revision directory, across processes (see the module doc)."""
    from core.kernels import compile_cache

    directory = compile_cache.revision_dir()
    with compile_cache.file_lock(directory / _LOCK_NAME):
        yield
