"""Resolution of a spec's ``init_from`` (warm start from a published version) against the model
repository, at submit and again by the worker before it trains.

:func:`pin_init_from` (submit) checks the spec against the source version's ``model.json``
and returns the spec with ``init_from.version`` set to the version it found, the newest when
the spec named none: the job, a retry of it and the artifact's provenance all mean the same
weights. A submitter that cannot read the repository (`cnn train submit` over Redis without
``CNN_MODELS_DIR``) only insists on an explicit version; the worker checks the rest.

Every refusal is an `InvalidSpec` naming the field: ``init_from.model`` (nothing published
under that name), ``init_from.version`` (no such version, or a damaged one),
``architecture.<i>`` (a layer whose parameters do not match the source's: both shapes are
given), ``init_from.freeze.<k>`` / ``init_from.freeze`` (see `core.warm_start.plan_transfer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.artifacts import ModelMeta, read_meta
from core.errors import ArtifactError
from core.repository import ModelRepository
from core.warm_start import TransferPlan, plan_transfer
from jobs.errors import InvalidSpec
from jobs.spec import Shape, TrainSpec

#: Published model names listed in an ``init_from.model`` error at most.
_NAMES_SHOWN = 20


@dataclass(frozen=True)
class ResolvedInit:
    """A spec's warm start, checked: the spec with the version pinned, the source version's
    directory and metadata, and which layers to copy and freeze."""

    spec: TrainSpec
    path: Path
    meta: ModelMeta
    plan: TransferPlan


def resolve_init_from(
    spec: TrainSpec, repository: ModelRepository, input_shape: Shape | None
) -> ResolvedInit:
    """Find and check the version ``spec.init_from`` names (it must be set).

    Args:
        spec: a validated spec with ``init_from``.
        repository: the model repository holding the source.
        input_shape: the new model's (C, H, W); None when not known yet (a data set file that
            only the worker loads): the source's is assumed, and the worker checks again.

    Raises:
        InvalidSpec: naming the field (see the module docstring).
    """
    init = spec.init_from
    if init is None:
        raise ValueError("the spec has no init_from")
    versions = repository.versions(init.model)
    if not versions:
        names = repository.names()
        shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
        raise InvalidSpec(
            [f"init_from.model: no published model {init.model!r} (published: {shown or 'none'})"]
        )
    version = init.version if init.version is not None else versions[-1]
    if version not in versions:
        listed = ", ".join(map(str, versions))
        raise InvalidSpec(
            [f"init_from.version: model {init.model!r} has no version {version} ({listed})"]
        )
    path = repository.path(init.model, version)
    try:
        meta = read_meta(path)
    except ArtifactError as exc:
        reason = str(exc).replace(str(path), f"{init.model}/{version}")
        raise InvalidSpec([f"init_from.version: cannot be used: {reason}"]) from None
    plan, problems = plan_transfer(
        meta.architecture,
        meta.input.shape,
        spec.architecture,
        input_shape or meta.input.shape,
        freeze=init.freeze,
        reset_head=init.reset_head,
        source_name=f"{init.model} version {version}",
    )
    if problems:
        raise InvalidSpec([".".join(map(str, loc)) + f": {message}" for loc, message in problems])
    pinned = init.model_copy(update={"version": version})
    return ResolvedInit(spec.model_copy(update={"init_from": pinned}), path, meta, plan)


def pin_init_from(spec: TrainSpec, repository: ModelRepository | None) -> TrainSpec:
    """``spec`` with ``init_from.version`` pinned after checking it against the repository
    (``spec`` itself when it has no ``init_from``). The new model's input is the one the spec
    states or its bundled data set has (`TrainSpec.input_shape`).

    Args:
        repository: None when the submitter cannot read it: then a version is required.

    Raises:
        InvalidSpec: naming the field (see the module docstring).
    """
    if spec.init_from is None:
        return spec
    if repository is None:
        if spec.init_from.version is None:
            raise InvalidSpec(
                [
                    "init_from.version: required here: this submitter cannot read the model "
                    "repository to pin the newest version (set CNN_MODELS_DIR, or submit "
                    "through the server)"
                ]
            )
        return spec
    return resolve_init_from(spec, repository, spec.input_shape()).spec


def starts_from(
    spec: Mapping[str, Any] | None, model: str, version: int, newest: int | None
) -> bool:
    """Whether a job's spec warm-starts from ``model`` version `version`.

    A submitted spec has ``init_from.version`` pinned; one without (a job queued by hand) starts
    from the version that is `newest` when its worker pins it, so it counts for that one.
    """
    init = spec.get("init_from") if spec is not None else None
    if not isinstance(init, Mapping) or init.get("model") != model:
        return False
    pinned = init.get("version")
    return bool(pinned == version if pinned is not None else version == newest)
