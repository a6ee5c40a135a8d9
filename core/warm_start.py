"""Warm start: a new model that begins with the weights of a published one.

:func:`plan_transfer` compares two architectures from their shapes alone (`core.estimate`,
nothing is allocated) and says which layers take the source's arrays, which stay frozen and
which one is re-initialised:

- every layer of the new model that has parameters takes them (and its buffers: batchnorm
  running statistics) from the source layer at the same index, which must be of the same type
  with the same parameter shapes;
- with ``reset_head`` the last layer with parameters (the classifier) is re-initialised to
  zeros and may have any shape (another class count);
- ``freeze`` entries are layer indices, or layer type names (``"conv2d"`` = every conv layer);
  each must name layers with parameters other than a reset head, and something must be left
  to train.

:func:`warm_start` then copies the arrays into a built model and freezes the layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.datasets import Normalisation
from core.errors import SpecError
from core.estimate import ModelEstimate, estimate
from core.model import Sequential

#: A problem found: the field path it is about and what is wrong.
Problem = tuple[tuple[str | int, ...], str]
Shape = tuple[int, int, int]


@dataclass(frozen=True)
class TransferPlan:
    """Layer indices of the new model: ``copied`` take the source's arrays, ``frozen`` (a
    subset of ``copied``) are not trained, ``head`` is re-initialised (None: no reset)."""

    copied: tuple[int, ...]
    frozen: tuple[int, ...]
    head: int | None


def _shapes_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {shape}" for name, shape in shapes.items())


def plan_transfer(
    source_architecture: Sequence[Any],
    source_input: Shape,
    architecture: Sequence[Any],
    input_shape: Shape,
    *,
    freeze: Sequence[int | str] = (),
    reset_head: bool = False,
    source_name: str = "the source model",
) -> tuple[TransferPlan, list[Problem]]:
    """Which layers of ``architecture`` (on per-sample ``input_shape``) take the arrays of
    ``source_architecture`` (on ``source_input``); the plan is usable only without problems.

    Problems name ``architecture.<i>`` (a layer with parameters whose source layer is missing,
    of another type or of other parameter shapes: both shapes are given, and both inputs when
    they differ), ``init_from.freeze.<k>`` (an entry naming no layer with parameters, or the
    reset head) and ``init_from.freeze`` (nothing left to train).
    """
    empty = TransferPlan((), (), None)
    try:
        source = estimate(list(source_architecture), source_input)
    except SpecError as exc:
        return empty, [(("init_from",), f"{source_name}: its architecture cannot be built: {exc}")]
    try:
        target = estimate(list(architecture), input_shape)
    except SpecError as exc:
        return empty, [(("architecture",), str(exc))]
    problems: list[Problem] = []
    with_parameters = [layer.index for layer in target.layers if layer.parameter_shapes]
    head = with_parameters[-1] if reset_head and with_parameters else None
    inputs = ""
    if tuple(input_shape) != tuple(source_input):
        inputs = f" (input {tuple(input_shape)} here, {tuple(source_input)} in {source_name})"
    copied = []
    for index in with_parameters:
        if index == head:
            continue
        problem = _layer_mismatch(source, target, index, source_name)
        if problem is None:
            copied.append(index)
        else:
            problems.append((("architecture", index), problem + inputs))
    frozen, freeze_problems = _frozen(target, freeze, head)
    problems += freeze_problems
    if with_parameters and not freeze_problems and set(with_parameters) <= frozen:
        problems.append(
            (("init_from", "freeze"), "every layer with parameters is frozen: nothing to train")
        )
    return TransferPlan(tuple(copied), tuple(sorted(frozen)), head), problems


def _layer_mismatch(
    source: ModelEstimate, target: ModelEstimate, index: int, source_name: str
) -> str | None:
    mine = target.layers[index]
    if index >= len(source.layers):
        return (
            f"{mine.type_name} has parameters to copy, but {source_name} has only "
            f"{len(source.layers)} layers"
        )
    theirs = source.layers[index]
    if theirs.type_name != mine.type_name:
        return f"{mine.type_name} here, {theirs.type_name} at layer {index} of {source_name}"
    if theirs.parameter_shapes != mine.parameter_shapes:
        return (
            f"{mine.type_name} parameters {_shapes_text(mine.parameter_shapes)} here, "
            f"{_shapes_text(theirs.parameter_shapes)} in {source_name}"
        )
    return None


def _frozen(
    target: ModelEstimate, freeze: Sequence[int | str], head: int | None
) -> tuple[set[int], list[Problem]]:
    layers = target.layers
    frozen: set[int] = set()
    problems: list[Problem] = []
    for k, entry in enumerate(freeze):
        loc: tuple[str | int, ...] = ("init_from", "freeze", k)
        if isinstance(entry, int):
            if not 0 <= entry < len(layers):
                problems.append(
                    (loc, f"no layer {entry}: the architecture has layers 0..{len(layers) - 1}")
                )
                continue
            if not layers[entry].parameter_shapes:
                problems.append(
                    (
                        loc,
                        f"layer {entry} ({layers[entry].type_name}) has no parameters to freeze",
                    )
                )
                continue
            indices = [entry]
        else:
            indices = [
                lay.index for lay in layers if lay.type_name == entry and lay.parameter_shapes
            ]
            if not indices:
                problems.append((loc, f"the architecture has no {entry} layer with parameters"))
                continue
        if head in indices:
            problems.append(
                (
                    loc,
                    f"layer {head} ({layers[head].type_name}) is the head that reset_head "
                    "re-initialises: it cannot be frozen",
                )
            )
            continue
        frozen.update(indices)
    return frozen, problems


def warm_start(model: Sequential, source: Sequential, plan: TransferPlan) -> None:
    """Copy the arrays of ``plan.copied`` layers (parameters and buffers) from ``source`` into
    ``model`` in place, zero the parameters of ``plan.head``, then freeze ``plan.frozen``
    (`Sequential.freeze`).

    Why a zero head rather than a random one: the copied layers give features several times
    larger than a fresh network's, so a randomly initialised head starts with confident random
    scores that the first epochs spend undoing; a zero head starts every class at the same
    probability and learns from the first step (Big Transfer, Kolesnikov et al. 2020, does the
    same). bench/finetune.py measured it: held-out accuracy after the first epoch 0.26 with a
    random head, 0.55 with a zero one.

    Raises:
        SpecError: a copied layer whose arrays differ in shape (the plan is for other models).
    """
    for index in plan.copied:
        mine, theirs = model.layers[index], source.layers[index]
        source_arrays = {name: p.value for name, p in theirs.parameters().items()}
        source_arrays.update(theirs.buffers())
        targets = {name: p.value for name, p in mine.parameters().items()}
        targets.update(mine.buffers())
        for name, target in targets.items():
            found = source_arrays.get(name)
            if found is None or found.shape != target.shape:
                raise SpecError(
                    f"layer {index} ({mine.type_name}).{name}: the source has no array of "
                    f"shape {target.shape}"
                )
            target[...] = found
    if plan.head is not None:
        for param in model.layers[plan.head].parameters().values():
            param.value[...] = 0
    model.freeze(plan.frozen)


def rescale_normalisation(
    normalisation: Normalisation,
    source_range: tuple[float, float],
    target_range: tuple[float, float],
) -> Normalisation:
    """The source model's per-channel normalisation expressed in another pixel unit: a pixel
    that is as bright (relative to black..white) normalises to the same value.

    ``mean' = lo' + (mean - lo) * s``, ``std' = std * s``, ``s = (hi' - lo') / (hi - lo)``.
    """
    lo, hi = source_range
    new_lo, new_hi = target_range
    scale = (new_hi - new_lo) / (hi - lo)
    return Normalisation(
        mean=[new_lo + (m - lo) * scale for m in normalisation.mean],
        std=[s * scale for s in normalisation.std],
    )
