"""The registry owns the loaded model versions and decides the default version.

Readers never lock: the table is an immutable snapshot replaced atomically on every change
(copy-on-write), so a request sees either the old or the new set of versions, never a mix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from core.lifecycle import UNLOADED, VersionPolicy
from server.batcher import BatcherClosed
from server.errors import InvalidInput, ModelNotFound, Unavailable
from server.model import ServedModel

T = TypeVar("T")

LOADING = "LOADING"
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class VersionState:
    """Index entry: one version the server knows of and its state."""

    name: str
    version: int
    state: str  # READY, LOADING or UNAVAILABLE
    reason: str = ""


@dataclass(frozen=True)
class ModelPolicyView:
    """A model's lifecycle as this process last applied it (see `core.lifecycle`)."""

    name: str
    state: str  # core.lifecycle.LOADED or UNLOADED
    policy: VersionPolicy
    is_default: bool  # no policy of its own: latest CNN_MAX_VERSIONS


def parse_version(text: str, field: str) -> int | None:
    """A decimal version string ('' -> None = newest).

    Raises:
        InvalidInput: not a positive decimal integer; names `field`.
    """
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1 or len(text) > 18:
        raise InvalidInput(f"{field} must be a positive decimal integer or empty, got {text!r}")
    return int(text)


class ModelRegistry:
    """Loaded versions per model name; the default is the newest loaded version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, dict[int, ServedModel]] = {}
        self._states: dict[tuple[str, int], VersionState] = {}
        self._policies: dict[str, ModelPolicyView] = {}

    # --- reads (lock-free snapshots) --------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[int]:
        return sorted(self._models.get(name, {}))

    def models(self) -> list[str]:
        """Every model this process knows of: loaded, or on disk with a lifecycle applied."""
        return sorted(set(self._models) | set(self._policies))

    def policy(self, name: str) -> ModelPolicyView | None:
        """The model's lifecycle as last applied by the watcher (None: never scanned)."""
        return self._policies.get(name)

    def loaded(self) -> list[ServedModel]:
        return [m for name in self.names() for _, m in sorted(self._models[name].items())]

    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The model version to serve (`version` None or 0: the newest loaded one).

        Raises:
            InvalidInput: `name` is empty.
            ModelNotFound: unknown model, or version not loaded (the message says why and
                lists the loaded versions).
            Unavailable: the version is still loading.
        """
        if not name:
            raise InvalidInput("model name is required (field 'model' / 'model_name' is empty)")
        versions = self._models.get(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            view = self._policies.get(name)
            if view is not None and view.state == UNLOADED:
                raise ModelNotFound(
                    f"model {name!r} is unloaded (load it with `cnn models load {name}` or "
                    f"RepositoryModelLoad); loaded models: {known}"
                )
            raise ModelNotFound(f"model {name!r} is not loaded (loaded models: {known})")
        if not version:
            return versions[max(versions)]
        model = versions.get(version)
        if model is not None:
            return model
        state = self._states.get((name, version))
        loaded = ", ".join(map(str, sorted(versions)))
        if state is not None and state.state == LOADING:
            raise Unavailable(f"model {name!r} version {version} is still loading; retry")
        reason = f" ({state.reason})" if state is not None and state.reason else ""
        raise ModelNotFound(
            f"model {name!r} has no loaded version {version}{reason}; loaded versions: {loaded}"
        )

    def run(self, name: str, version: int | None, fn: Callable[[ServedModel], T]) -> T:
        """Call `fn(model)` on the resolved version, retrying once if it was just unloaded.

        The retry makes a hot swap invisible: a request that resolved the old version just
        before it was unloaded is re-resolved to the current default.
        """
        for attempt in range(3):
            model = self.get(name, version)
            try:
                return fn(model)
            except BatcherClosed:
                if version or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def index(self, name: str | None = None) -> list[VersionState]:
        """Every known version (loaded, loading, failed or not served), sorted by name and
        version; only `name`'s when given."""
        states = dict(self._states)
        for model, versions in self._models.items():
            for version in versions:
                states[(model, version)] = VersionState(model, version, READY)
        return [states[key] for key in sorted(states) if name is None or key[0] == name]

    # --- writes (watcher thread) ------------------------------------------------------------

    def set_state(self, name: str, version: int, state: str, reason: str = "") -> None:
        with self._lock:
            self._states[(name, version)] = VersionState(name, version, state, reason)

    def forget(self, name: str, version: int) -> None:
        with self._lock:
            self._states.pop((name, version), None)

    def state_of(self, name: str, version: int) -> VersionState | None:
        """The recorded state of a version that is not loaded (None: none recorded)."""
        return self._states.get((name, version))

    def states_of(self, name: str) -> list[int]:
        """Versions of `name` with a recorded state."""
        return sorted(v for (n, v) in self._states if n == name)

    def set_policy(self, view: ModelPolicyView) -> None:
        with self._lock:
            self._policies = {**self._policies, view.name: view}

    def drop_policy(self, name: str) -> None:
        """Forget a model that left the repository (its versions' states too)."""
        with self._lock:
            self._policies = {k: v for k, v in self._policies.items() if k != name}
            self._states = {k: v for k, v in self._states.items() if k[0] != name}

    def add(self, model: ServedModel) -> None:
        """Make `model` visible (atomically); it becomes the default if it is the newest."""
        with self._lock:
            table = {k: dict(v) for k, v in self._models.items()}
            table.setdefault(model.name, {})[model.version] = model
            self._models = table
            self._states.pop((model.name, model.version), None)

    def remove(self, name: str, version: int) -> ServedModel | None:
        """Hide a version (atomically) and return it for closing."""
        with self._lock:
            table = {k: dict(v) for k, v in self._models.items()}
            model = table.get(name, {}).pop(version, None)
            if name in table and not table[name]:
                del table[name]
            self._models = table
            self._states.pop((name, version), None)
            return model

    def close_all(self) -> None:
        with self._lock:
            models = [m for versions in self._models.values() for m in versions.values()]
            self._models = {}
        for model in models:
            model.close()
