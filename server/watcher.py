"""Repository watcher: polls the model repository and hot-loads new versions.

Runs in one background thread. Each scan:
- for each model, the wanted versions are the newest `max_versions` versions on disk that
  have not failed to load;
- wanted versions that are not loaded yet are loaded newest first, warmed up, then added to
  the registry (an atomic swap: requests keep flowing to the previous default until then);
- a version that fails to load is logged, recorded as UNAVAILABLE with the reason, and
  skipped while its files stay as they are; the previous one keeps serving. Versions the
  worker publishes are immutable (renamed into place complete), but a directory copied in by
  hand appears file by file: once any of its files changes (name, size or mtime) the version
  is tried again, so a slow copy is served within a poll or two of its last file landing;
- loaded versions that are no longer wanted (superseded or deleted) are removed from the
  registry and their batchers closed after finishing queued work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.redaction import hide_paths
from server.model import ServedModel
from server.registry import LOADING, UNAVAILABLE, ModelRegistry

log = logging.getLogger(__name__)

Loader = Callable[[Path, str, int], ServedModel]

#: What a version directory looked like when it failed to load: (file name, size, mtime_ns).
Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """The names, sizes and modification times of the files in `directory` (cheap: a few stats)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return ()
    stamps = []
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:  # removed while we looked: the next scan sees the settled state
            continue
        stamps.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


class RepositoryWatcher:
    """Poll `root` every `interval_s` seconds and keep `registry` in step with it."""

    def __init__(
        self,
        root: Path,
        registry: ModelRegistry,
        loader: Loader,
        *,
        interval_s: float,
        max_versions: int,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self._registry = registry
        self._loader = loader
        self._interval_s = interval_s
        self._max_versions = max_versions
        self._on_change = on_change
        # (name, version) -> the directory's fingerprint when it failed to load.
        self._failed: dict[tuple[str, int], Fingerprint] = {}
        self._stop = threading.Event()
        self.scanned = threading.Event()  # set after the first complete scan
        self._thread: threading.Thread | None = None
        self._missing_logged = False

    def start(self) -> RepositoryWatcher:
        self._thread = threading.Thread(target=self._loop, name="repository-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:
                log.exception("repository scan of %s failed; retrying", self.root)
            self.scanned.set()
            self._stop.wait(self._interval_s)

    def _disk_versions(self) -> dict[str, list[int]]:
        from core.repository import ModelRepository

        if not self.root.is_dir():
            if not self._missing_logged:
                log.warning(
                    "model repository %s does not exist (yet); serving no models", self.root
                )
                self._missing_logged = True
            return {}
        self._missing_logged = False
        repo = ModelRepository(self.root)
        return {name: sorted(repo.versions(name)) for name in repo.names()}

    def scan_once(self) -> None:
        """One pass over the repository (also callable directly, e.g. from tests)."""
        disk = self._disk_versions()
        changed = False
        for name, versions in sorted(disk.items()):
            candidates = [v for v in versions if not self._still_failed(name, v)]
            wanted = set(candidates[-self._max_versions :])
            for version in sorted(wanted, reverse=True):
                if self._stop.is_set():
                    return
                if version in self._registry.versions(name):
                    continue
                changed |= self._load(name, version)
            # Unload only once something newer is serving (never leave a model empty).
            loaded = self._registry.versions(name)
            serving_wanted = wanted & set(loaded)
            for version in loaded:
                if version not in wanted and serving_wanted:
                    self._unload(name, version, "superseded")
                    changed = True
        for name in self._registry.names():
            for version in self._registry.versions(name):
                if version not in disk.get(name, []):
                    self._unload(name, version, "deleted from the repository")
                    changed = True
        if changed and self._on_change is not None:
            self._on_change()

    def _still_failed(self, name: str, version: int) -> bool:
        """True while a version that failed to load has not changed on disk since."""
        failed_as = self._failed.get((name, version))
        if failed_as is None:
            return False
        from core.repository import ModelRepository

        if fingerprint(ModelRepository(self.root).path(name, version)) == failed_as:
            return True
        del self._failed[(name, version)]
        log.info(
            "model %s version %d changed on disk since it failed to load; retrying", name, version
        )
        return False

    def _load(self, name: str, version: int) -> bool:
        from core.repository import ModelRepository

        self._registry.set_state(name, version, LOADING)
        path = ModelRepository(self.root).path(name, version)
        before = fingerprint(path)
        started = time.perf_counter()
        try:
            model = self._loader(path, name, version)
        except Exception as exc:
            # The fingerprint taken before loading: a file that landed during the attempt
            # makes the next scan try again.
            self._failed[(name, version)] = before
            # Clients see the reason (RepositoryIndex, GetModel...): no server paths in it.
            reason = f"failed to load: {type(exc).__name__}: {hide_paths(str(exc), [self.root])}"
            self._registry.set_state(name, version, UNAVAILABLE, reason)
            log.error(
                "model %s version %d failed to load from %s: %s: %s; skipping it",
                name,
                version,
                path,
                type(exc).__name__,
                exc,
            )
            return False
        self._registry.add(model)
        log.info(
            "model %s version %d is serving (load + warm-up %.3f s)",
            name,
            version,
            time.perf_counter() - started,
        )
        return True

    def _unload(self, name: str, version: int, why: str) -> None:
        model = self._registry.remove(name, version)
        if model is not None:
            model.close()
            log.info("unloaded model %s version %d (%s)", name, version, why)
