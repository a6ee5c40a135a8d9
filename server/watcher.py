"""Repository watcher: polls the model repository and hot-loads new versions.

Runs in one background thread. Each scan:
- for each model, reads its lifecycle (`core.lifecycle`: `root/<name>/policy.json`, written by
  the lifecycle RPCs of any process): an unloaded model serves nothing; a loaded one serves
  the versions its version policy selects (default `latest max_versions`, at most
  `max_served_versions`) among those on disk that have not failed to load;
- wanted versions that are not loaded yet are loaded newest first, warmed up, then added to
  the registry (an atomic swap: requests keep flowing to the previous default until then);
- a version that fails to load is logged, recorded as UNAVAILABLE with the reason, and
  skipped while its files stay as they are; the previous one keeps serving. Versions the
  worker publishes are immutable (renamed into place complete), but a directory copied in by
  hand appears file by file: once any of its files changes (name, size or mtime) the version
  is tried again, so a slow copy is served within a poll or two of its last file landing;
- loaded versions that are no longer wanted (superseded, outside the policy) are removed from
  the registry once a wanted version serves (a policy never leaves a model empty because its
  versions fail to load), and their batchers closed after finishing queued work; versions
  deleted from disk, and every version of an unloaded model, are removed at once;
- versions on disk that are not served are listed UNAVAILABLE with the reason ("unloaded",
  "not selected by the version policy latest 1").

`request_scan` + `wait_scanned` let a lifecycle RPC return once this process applied its
change (the other processes follow within one poll interval).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.lifecycle import UNLOADED, LifecycleError, ModelLifecycle, VersionPolicy, read_lifecycle
from core.redaction import hide_paths
from server.model import ServedModel
from server.registry import LOADING, UNAVAILABLE, ModelPolicyView, ModelRegistry

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
        max_served_versions: int = 16,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self._registry = registry
        self._loader = loader
        self._interval_s = interval_s
        self._max_versions = max_versions
        self._max_served = max(max_served_versions, max_versions)
        self._on_change = on_change
        # (name, version) -> the directory's fingerprint when it failed to load.
        self._failed: dict[tuple[str, int], Fingerprint] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()  # set: scan now instead of waiting out the interval
        self._progress = threading.Condition()
        self._started = 0  # scans begun
        self._finished = 0  # scans done (numbered like _started)
        self.scanned = threading.Event()  # set after the first complete scan
        self._thread: threading.Thread | None = None
        self._missing_logged = False
        # name -> the policy.json error last logged (logged once per distinct error)
        self._bad_policy: dict[str, str] = {}

    @property
    def default_latest(self) -> int:
        """N of the default version policy, `latest N` (CNN_MAX_VERSIONS)."""
        return self._max_versions

    def start(self) -> RepositoryWatcher:
        self._thread = threading.Thread(target=self._loop, name="repository-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._progress:
            self._progress.notify_all()  # waiters of wait_scanned give up
        if self._thread is not None:
            self._thread.join(timeout)

    def request_scan(self) -> int:
        """Ask for a scan that begins after this call; returns its number for `wait_scanned`."""
        with self._progress:
            self._wake.set()
            return self._started + 1

    def wait_scanned(self, scan: int, timeout: float) -> bool:
        """Wait until scan number `scan` finished; False after `timeout` s or on stop."""
        with self._progress:
            return (
                self._progress.wait_for(
                    lambda: self._finished >= scan or self._stop.is_set(), timeout
                )
                and not self._stop.is_set()
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._progress:
                self._started += 1
                self._wake.clear()
            try:
                self.scan_once()
            except Exception:
                log.exception("repository scan of %s failed; retrying", self.root)
            with self._progress:
                self._finished = self._started
                self._progress.notify_all()
            self.scanned.set()
            self._wake.wait(self._interval_s)

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
            if self._stop.is_set():
                return
            view = self._policy_view(name)
            changed |= self._apply(name, versions, view)
            # After loading: a model first appears in ListModels once it serves (or failed).
            self._registry.set_policy(view)
        for name in self._registry.models():
            if name not in disk:
                for version in self._registry.versions(name):
                    self._unload(name, version, "deleted from the repository")
                    changed = True
                self._registry.drop_policy(name)
        if changed and self._on_change is not None:
            self._on_change()

    def _policy_view(self, name: str) -> ModelPolicyView:
        """The model's lifecycle from disk; an unreadable file counts as no file (logged)."""
        try:
            lifecycle = read_lifecycle(self.root, name)
            self._bad_policy.pop(name, None)
        except (LifecycleError, OSError) as exc:
            if self._bad_policy.get(name) != str(exc):
                log.error("model %s: %s; using the default version policy", name, exc)
                self._bad_policy[name] = str(exc)
            lifecycle = ModelLifecycle()
        policy = lifecycle.policy or VersionPolicy.latest(self._max_versions)
        return ModelPolicyView(name, lifecycle.state, policy, lifecycle.policy is None)

    def _apply(self, name: str, versions: list[int], view: ModelPolicyView) -> bool:
        """Bring one model's loaded versions in step with its versions on disk and policy."""
        changed = False
        candidates = [v for v in versions if not self._still_failed(name, v)]
        unloaded = view.state == UNLOADED
        wanted = set() if unloaded else set(view.policy.select(candidates, self._max_served))
        for version in sorted(wanted, reverse=True):
            if self._stop.is_set():
                return changed
            if version not in self._registry.versions(name):
                changed |= self._load(name, version)
        # Unload what is not wanted only once a wanted version is serving (never leave a model
        # empty because its wanted versions fail); deleted ones and an unloaded model at once.
        loaded = self._registry.versions(name)
        serving_wanted = wanted & set(loaded)
        for version in loaded:
            if version not in wanted and (serving_wanted or unloaded or version not in versions):
                why = (
                    "unloaded" if unloaded else f"not selected by the version policy {view.policy}"
                )
                if version not in versions:
                    why = "deleted from the repository"
                self._unload(name, version, why)
                changed = True
        self._record_unserved(name, versions, view)
        return changed

    def _record_unserved(self, name: str, versions: list[int], view: ModelPolicyView) -> None:
        """List every version on disk that does not serve, with why (RepositoryIndex)."""
        loaded = set(self._registry.versions(name))
        if view.state == UNLOADED:
            reason = "unloaded"
        else:
            reason = f"not selected by the version policy {view.policy}"
        for version in versions:
            if version in loaded or (name, version) in self._failed:
                continue
            state = self._registry.state_of(name, version)
            if state is None or (state.state, state.reason) != (UNAVAILABLE, reason):
                self._registry.set_state(name, version, UNAVAILABLE, reason)
        for version in self._registry.states_of(name):
            if version not in versions:
                self._registry.forget(name, version)
                self._failed.pop((name, version), None)

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
