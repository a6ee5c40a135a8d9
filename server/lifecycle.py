"""Version lifecycle operations: set a model's version policy, load / unload it, delete a version.

Each operation changes the model repository on disk (`core.lifecycle`: `policy.json`, the
version directories) under the model's lifecycle lock, then asks this process's watcher for a
scan and waits until it finished, so the call returns once THIS process applied the change.
Other serving processes and replicas read the same files and follow on their next scan (within
`CNN_POLL_INTERVAL_S`). File work runs in the `blocking` threads, never on the event loop.

Shared by `cnn.v1.Models` (SetVersionPolicy, LoadModel, ...) and the V2 repository extension
(RepositoryModelLoad / RepositoryModelUnload).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.lifecycle import (
    LOADED,
    UNLOADED,
    LifecycleError,
    ModelLifecycle,
    VersionPolicy,
    locked,
    read_lifecycle,
    trash_version,
    write_lifecycle,
)
from core.repository import ModelRepository, RepositoryError, check_name
from jobs.queue import JobQueue
from jobs.warm_start import starts_from
from server.errors import FailedPrecondition, InvalidInput, ModelNotFound, Unavailable
from server.in_use import refuse_if_in_use
from server.registry import ModelRegistry
from server.watcher import RepositoryWatcher

log = logging.getLogger(__name__)

T = TypeVar("T")


def model_name(value: str, field: str) -> str:
    """A valid model name, or InvalidInput naming `field`."""
    try:
        return check_name(value)
    except RepositoryError as exc:
        raise InvalidInput(f"{field}: {exc}") from exc


class LifecycleService:
    """Lifecycle changes of the models in `root`, applied by `watcher` to `registry`.

    Args:
        root: the model repository (CNN_MODELS_DIR).
        registry, watcher: this process's loaded models and the watcher that fills them.
        blocking: executor for file work and for waiting on the watcher.
        jobs: the training queue, asked before a delete whether a job fine-tunes from the
            version.
        max_served_versions: the most versions a policy may select (CNN_MAX_SERVED_VERSIONS).
        apply_timeout_s: how long a call waits for this process's scan when the caller set no
            deadline (a scan may load and warm models).
    """

    def __init__(
        self,
        root: Path,
        registry: ModelRegistry,
        watcher: RepositoryWatcher,
        blocking: Executor,
        *,
        jobs: JobQueue,
        max_served_versions: int,
        apply_timeout_s: float,
    ) -> None:
        self.root = Path(root)
        self.registry = registry
        self._watcher = watcher
        self._repository = ModelRepository(self.root)
        self._blocking = blocking
        self._jobs = jobs
        self._max_served = max_served_versions
        self.max_served_versions = max_served_versions
        self._apply_timeout_s = apply_timeout_s

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._blocking, fn, *args)
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot change the model repository {self.root.name!r}: "
                f"{exc.strerror or type(exc).__name__} (the server needs write access to it)"
            ) from exc

    async def _applied(self, time_remaining: float | None) -> bool:
        """Wait for a scan of this process that began after the change; False on timeout."""
        scan = self._watcher.request_scan()
        if time_remaining is None:
            timeout = self._apply_timeout_s
        else:  # answer before the caller's deadline, with what is applied by then
            timeout = max(time_remaining * 0.9 - 0.1, 0.0)
        return await self._run(self._watcher.wait_scanned, scan, timeout)

    # -- the operations ----------------------------------------------------------------------

    async def set_policy(
        self, name: str, policy: VersionPolicy | None, time_remaining: float | None = None
    ) -> None:
        """Set (None: clear, back to the server default) the version policy of `name`.

        Raises:
            ModelNotFound: no published version of `name`, or a `specific` version that is
                not published (naming `policy.specific.versions`).
            InvalidInput: `all` selects more than CNN_MAX_SERVED_VERSIONS versions.
        """
        await self._run(self._set_policy, name, policy)
        await self._applied(time_remaining)

    def _set_policy(self, name: str, policy: VersionPolicy | None) -> None:
        with self._model_lock(name) as published:
            if policy is not None and policy.kind == "specific":
                missing = [v for v in policy.versions if v not in published]
                if missing:
                    raise ModelNotFound(
                        f"policy.specific.versions: model {name!r} has no version "
                        f"{', '.join(map(str, missing))} (published: {_listed(published)})"
                    )
            if policy is not None and policy.kind == "all" and len(published) > self._max_served:
                raise InvalidInput(
                    f"policy.all: model {name!r} has {len(published)} versions, over "
                    f"CNN_MAX_SERVED_VERSIONS={self._max_served}; use latest N or specific"
                )
            current = self._read(name)
            write_lifecycle(self.root, name, current.model_copy(update={"policy": policy}))
            log.info("model %s: version policy set to %s", name, policy or "the default")

    async def set_state(self, name: str, state: str, time_remaining: float | None = None) -> None:
        """Load (`core.lifecycle.LOADED`) or unload (`UNLOADED`) the model `name`.

        Raises:
            ModelNotFound: no published version of `name`.
            FailedPrecondition: loading, this process's scan finished and no version of the
                model loaded (the message gives each version's reason).
            Unavailable: loading, this process's scan did not finish in time (still loading).
        """
        await self._run(self._set_state, name, state)
        applied = await self._applied(time_remaining)
        if state != LOADED or self.registry.versions(name):
            return
        if not applied:
            raise Unavailable(
                f"model {name!r} is set to load but is still loading in this server process; "
                "poll RepositoryIndex / ListModels"
            )
        reasons = "; ".join(
            f"version {s.version}: {s.reason}" for s in self.registry.index(name) if s.reason
        )
        raise FailedPrecondition(
            f"model {name!r} is set to load but no version of it loaded ({reasons or 'none'})"
        )

    def _set_state(self, name: str, state: str) -> None:
        with self._model_lock(name):
            current = self._read(name)
            if current.state != state:
                write_lifecycle(self.root, name, current.model_copy(update={"state": state}))
                log.info("model %s: %s", name, state)

    async def delete(
        self, name: str, version: int, force: bool, time_remaining: float | None = None
    ) -> None:
        """Delete published version `version` of `name` from the repository.

        Raises:
            ModelNotFound: no such version.
            FailedPrecondition: the model's `specific` policy names the version (even with
                `force`: change the policy first); or, unless `force`: it is the only version
                the policy serves, or a queued or running job's spec names it as ``init_from``
                (naming the jobs).
            Unavailable: not `force` and the job queue (Redis) cannot tell whether a job
                starts from the version; nothing was deleted.
        """
        await self._run(self._delete, name, version, force)
        await self._applied(time_remaining)

    def _delete(self, name: str, version: int, force: bool) -> None:
        with self._model_lock(name) as published:
            if version not in published:
                raise ModelNotFound(
                    f"model {name!r} has no version {version} (published: {_listed(published)})"
                )
            current = self._read(name)
            policy = current.policy
            if policy is not None and policy.kind == "specific" and version in policy.versions:
                raise FailedPrecondition(
                    f"model {name!r} version {version} is named by the model's version policy "
                    f"{policy}; change the policy first (`cnn models policy {name} ...`)"
                )
            # The policy's pick on disk (what every process serves) or, when a version failed
            # to load here, what this process actually serves.
            only = [version] in (self._served(current, published), self.registry.versions(name))
            if only and not force:
                raise FailedPrecondition(
                    f"model {name!r} version {version} is the only version served; deleting it "
                    "leaves the model without it (another version may take over or none): "
                    "pass force to delete anyway"
                )
            if not force:  # last, so that every refusal above comes without asking Redis
                refuse_if_in_use(
                    self._jobs,
                    f"model {name!r} version {version}",
                    "as their init_from (to fine-tune from)",
                    lambda spec: starts_from(spec, name, version, published[-1]),
                    ", pass force to delete anyway (they will fail),",
                )
            trash_version(self.root, name, version)
            log.info("model %s version %d deleted%s", name, version, " (forced)" if force else "")

    # -- helpers -----------------------------------------------------------------------------

    def _served(self, lifecycle: ModelLifecycle, published: list[int]) -> list[int]:
        """What the lifecycle selects among `published` (as every process computes it)."""
        if lifecycle.state == UNLOADED:
            return []
        policy = lifecycle.policy or self._default_policy()
        return policy.select(published, self._max_served)

    def _default_policy(self) -> VersionPolicy:
        return VersionPolicy.latest(self._watcher.default_latest)

    def _read(self, name: str) -> ModelLifecycle:
        try:
            return read_lifecycle(self.root, name)
        except LifecycleError as exc:
            # A hand-edited file the watcher ignores (it logs it); an RPC replaces it.
            log.warning("model %s: %s; replacing it", name, exc)
            return ModelLifecycle()

    @contextmanager
    def _model_lock(self, name: str) -> Iterator[list[int]]:
        """Hold the model's lifecycle lock; yields its published versions.

        Raises:
            ModelNotFound: `name` has no published version.
        """
        if not self._repository.versions(name):
            raise ModelNotFound(f"model {name!r} has no published version")
        with locked(self.root, name):
            yield self._repository.versions(name)


def _listed(versions: list[int]) -> str:
    return ", ".join(map(str, versions)) or "none"
