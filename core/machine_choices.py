"""Measured choices shared by every process on the machine: one small JSON per kernel revision.

Why: an ``auto`` decision made by timing (:mod:`core.conv_algorithms`: im2col or a Winograd tile
size per convolution shape) can come out differently in two processes where the candidates are
within noise of each other, and then a worker and the server (or two serving processes) compute
the same model with different algorithms, whose outputs differ in the last bits (~1e-5
relative). Persisting the first measurement per machine makes every later process use it.

What: :func:`choose` maps a string key (the caller's: e.g. a convolution's shape) to a choice (an
``int`` or a ``str``). The first process to *record* a key wins; every other process, and every
later one, reads that choice instead of measuring. The file is::

    <compile cache revision directory>/choices.json    (core.kernels.compile_cache.revision_dir)

so it is keyed like the compiled kernels (kernel sources, Python/Numba/llvmlite/NumPy versions,
CPU): changed kernels are measured again, and ``python -m core.kernels --clear`` / ``--prune``
remove it with the kernels. The file also names that key inside, and is parsed as JSON and
checked by a pydantic model: a corrupt, foreign (another revision's key) or malformed file is
ignored with a warning (and replaced at the next record), never trusted and never unpickled.
Records are read-modify-write under an ``flock`` on the directory and written atomically
(:func:`core.durable.atomic_write_bytes`), so concurrent recorders never lose each other's keys;
readers take no lock (a rename is atomic). A root that cannot be written (read-only) only costs
the sharing: the process keeps its own measurement.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from core.durable import atomic_write_bytes
from core.kernels import compile_cache

log = logging.getLogger(__name__)

Choice: TypeAlias = StrictInt | StrictStr
FILE_NAME = "choices.json"
FORMAT = 1


class ChoicesFile(BaseModel):
    """The JSON file's content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: StrictInt
    cache_key: StrictStr
    choices: dict[str, Choice]


def path() -> Path:
    """Where this revision's choices live (inside the compile cache's revision directory)."""
    return compile_cache.revision_dir() / FILE_NAME


def read(file: Path | None = None, cache_key: str | None = None) -> dict[str, Choice]:
    """The recorded choices, or an empty mapping when the file is missing, unreadable, corrupt,
    of another format or another revision's (``cache_key``: this process's by default)."""
    file = path() if file is None else file
    expected = compile_cache.cache_key() if cache_key is None else cache_key
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("ignoring machine choices %s: %s", file, exc)
        return {}
    try:
        content = ChoicesFile.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ignoring machine choices %s: not a valid choices file (%s)", file, exc)
        return {}
    if content.format != FORMAT or content.cache_key != expected:
        log.warning(
            "ignoring machine choices %s: format %s, key %s (this process: format %s, key %s)",
            file,
            content.format,
            content.cache_key,
            FORMAT,
            expected,
        )
        return {}
    return dict(content.choices)


def record(key: str, choice: Choice, file: Path | None = None) -> Choice:
    """Record ``choice`` for ``key`` unless another process recorded one first; returns the
    choice that stands (the earlier one if there was one). A failed write is logged and
    returns ``choice`` (this process keeps its measurement)."""
    file = path() if file is None else file
    cache_key = compile_cache.cache_key()
    try:
        with compile_cache.directory_lock(file.parent):
            current = read(file, cache_key)
            if key in current:
                return current[key]
            current[key] = choice
            content = ChoicesFile(format=FORMAT, cache_key=cache_key, choices=current)
            data = json.dumps(content.model_dump(), indent=1, sort_keys=True).encode()
            # 0644 whatever the umask: every process of the user (and a shared root) reads it
            atomic_write_bytes(file, data + b"\n", mode=0o644)
    except OSError as exc:
        log.warning("could not record machine choice %s in %s: %s", key, file, exc)
    return choice


_lock = threading.Lock()
_memo: dict[str, Choice] = {}


def choose(key: str, measure: Callable[[], Choice]) -> Choice:
    """The machine's choice for ``key``: this process's memo, else the file's, else
    ``measure()`` recorded for every later process (first recorder wins). One measurement per
    key per process, even when threads ask at once."""
    found = _memo.get(key)
    if found is not None:
        return found
    with _lock:
        found = _memo.get(key)
        if found is None:
            found = read().get(key)
            if found is None:
                found = record(key, measure())
            _memo[key] = found
    return found


def forget() -> None:
    """Drop this process's memo (tests; the file is untouched)."""
    with _lock:
        _memo.clear()
