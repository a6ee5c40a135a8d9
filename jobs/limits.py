"""Caps on what a training spec may ask for, checked from its shapes alone (issue #13).

A spec is sized with `core.estimate.estimate`, which allocates nothing, so a few hundred bytes
asking for a billion-unit layer are refused in microseconds instead of taking the memory of the
process that validates them. The caps are `QueueSettings` fields (``CNN_MAX_PARAMETERS``, ...)
shared by the server, the worker and the CLI: the same spec gets the same answer, in the same
words, from all three. Every message names the field path, the estimate, the limit and the
variable that sets it, e.g.::

    architecture.3: dense layer: 1,048,576 units x 3,136 inputs = 3.3 G parameters,
    limit CNN_MAX_PARAMETERS=50,000,000
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.estimate import LayerEstimate, ModelEstimate

Loc = tuple[str | int, ...]

#: Per-layer options capped by ``max_kernel`` (window sides) and ``max_padding``.
_WINDOW_OPTIONS = ("kernel_size", "size")


@dataclass(frozen=True)
class SpecLimits:
    """The caps (see `jobs.settings.QueueSettings` for what each means); the defaults are
    generous for this library's CPU training yet far below what exhausts a 24 GiB machine."""

    max_parameters: int = 50_000_000
    max_activation_bytes: int = 512 * 2**20
    max_training_bytes: int = 8 * 2**30
    max_layer_units: int = 65_536
    max_filters: int = 4_096
    max_kernel: int = 64
    max_padding: int = 64
    max_epochs: int = 1_000
    max_train_batch_size: int = 4_096
    max_timeout_s: int = 24 * 3600

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_settings(cls, settings: Any) -> SpecLimits:
        """The limits held by a settings object with one attribute per field."""
        return cls(**{name: getattr(settings, name) for name in cls.field_names()})


DEFAULT_LIMITS = SpecLimits()


def variable(field: str) -> str:
    """The environment variable of a limit: ``max_epochs`` -> ``CNN_MAX_EPOCHS``."""
    return f"CNN_{field.upper()}"


def count(n: int) -> str:
    """``3.3 G`` above a million, ``61,706`` below."""
    for scale, unit in ((10**18, "E"), (10**15, "P"), (10**12, "T"), (10**9, "G"), (10**6, "M")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:,}"


def size(n: int) -> str:
    """Bytes in binary units: ``123.4 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _limit(limits: SpecLimits, field: str, show: str = "count") -> str:
    value = getattr(limits, field)
    text = f"{value:,}" if show == "count" else f"{value:,} ({size(value)})"
    return f"limit {variable(field)}={text}"


# -- the job's own fields ----------------------------------------------------------------------


def job_errors(
    epochs: int, batch_size: int, timeout_s: int | None, limits: SpecLimits
) -> Iterator[tuple[Loc, str]]:
    """Epochs, batch size and timeout over their caps."""
    if epochs > limits.max_epochs:
        yield ("epochs",), f"{epochs:,} epochs, {_limit(limits, 'max_epochs')}"
    if batch_size > limits.max_train_batch_size:
        yield (
            ("batch_size",),
            f"{batch_size:,} samples per batch, {_limit(limits, 'max_train_batch_size')}",
        )
    if timeout_s is not None and timeout_s > limits.max_timeout_s:
        yield ("timeout_s",), f"{timeout_s:,} s, {_limit(limits, 'max_timeout_s')}"


# -- each layer's options (no input shape needed) ----------------------------------------------


def _ints(value: Any) -> list[int]:
    """The integers of an int / [a, b] / [t, b, l, r] option (others: none; the layer's own
    parsing reports those)."""
    values = value if isinstance(value, list | tuple) else [value]
    return [int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)]


def layer_option_errors(
    architecture: list[dict[str, Any]], limits: SpecLimits
) -> Iterator[tuple[Loc, str]]:
    """Units, filters, window sides and padding of each layer config over their caps."""
    for index, cfg in enumerate(architecture):
        kind = cfg.get("type")
        where = ("architecture", index)
        units = _ints(cfg.get("units"))
        if units and units[0] > limits.max_layer_units:
            yield (
                (*where, "units"),
                f"{kind} layer: {units[0]:,} units, {_limit(limits, 'max_layer_units')}",
            )
        filters = _ints(cfg.get("filters"))
        if filters and filters[0] > limits.max_filters:
            yield (
                (*where, "filters"),
                f"{kind} layer: {filters[0]:,} filters, {_limit(limits, 'max_filters')}",
            )
        for option in _WINDOW_OPTIONS:
            sides = _ints(cfg.get(option))
            if sides and max(sides) > limits.max_kernel:
                yield (
                    (*where, option),
                    f"{kind} layer: {option} {max(sides):,}, {_limit(limits, 'max_kernel')}",
                )
        pads = _ints(cfg.get("padding"))
        if pads and max(pads) > limits.max_padding:
            yield (
                (*where, "padding"),
                f"{kind} layer: padding {max(pads):,}, {_limit(limits, 'max_padding')}",
            )


# -- the model's size (needs the input shape) --------------------------------------------------


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(f"{v:,}" for v in shape)


def _parameters_of(layer: LayerEstimate) -> str:
    """``dense layer: 1,048,576 units x 3,136 inputs = 3.3 G parameters``."""
    shapes = layer.parameter_shapes
    weight = shapes.get("weight")
    if layer.type_name == "dense" and weight is not None:
        what = f"{weight[1]:,} units x {weight[0]:,} inputs"
    elif layer.type_name == "conv2d" and weight is not None:
        what = f"{weight[0]:,} filters x {_shape(weight[1:])} inputs"
    else:
        what = " + ".join(f"{name} {_shape(s)}" for name, s in shapes.items())
    return f"{layer.type_name} layer: {what} = {count(layer.parameters)} parameters"


def _layer_bytes(layer: LayerEstimate, itemsize: int) -> int:
    return layer.activation_elements * itemsize + layer.workspace_bytes


def _activations_of(layer: LayerEstimate, itemsize: int) -> str:
    """``conv2d layer: output 256x8,026x8,026 = 61.4 GiB + 0.5 GiB scratch``."""
    out = size(layer.activation_elements * itemsize)
    scratch = f" + {size(layer.workspace_bytes)} cache/scratch" if layer.workspace_bytes else ""
    return f"{layer.type_name} layer: output {_shape(layer.output_shape)} = {out}{scratch}"


def size_errors(
    model: ModelEstimate, *, batch_size: int, optimizer: str, limits: SpecLimits
) -> Iterator[tuple[Loc, str]]:
    """Parameters, activation bytes per sample and a training step's bytes over their caps.

    A cap one layer breaks on its own is reported at that layer.
    """
    worst = max(model.layers, key=lambda layer: layer.parameters)
    if worst.parameters > limits.max_parameters:
        yield (
            ("architecture", worst.index),
            f"{_parameters_of(worst)}, {_limit(limits, 'max_parameters')}",
        )
    elif model.parameters > limits.max_parameters:
        yield (
            ("architecture",),
            f"{count(model.parameters)} parameters in all, {_limit(limits, 'max_parameters')}",
        )
    per_sample = model.activation_bytes_per_sample
    if per_sample > limits.max_activation_bytes:
        biggest = max(model.layers, key=lambda layer: _layer_bytes(layer, model.itemsize))
        yield (
            ("architecture",),
            f"training holds ~{size(per_sample)} of activations per sample (largest: layer "
            f"{biggest.index}, {_activations_of(biggest, model.itemsize)}), "
            f"{_limit(limits, 'max_activation_bytes', show='bytes')}",
        )
        return  # the step's total says the same thing again
    step = model.training_bytes(batch_size, optimizer)
    if step > limits.max_training_bytes:
        fixed = step - batch_size * per_sample
        yield (
            ("batch_size",),
            f"a training step on {batch_size:,} samples needs ~{size(step)} "
            f"({size(per_sample)} per sample x {batch_size:,} + {size(fixed)} of parameters, "
            f"gradients and {optimizer} state), "
            f"{_limit(limits, 'max_training_bytes', show='bytes')}",
        )


__all__ = [
    "DEFAULT_LIMITS",
    "SpecLimits",
    "count",
    "job_errors",
    "layer_option_errors",
    "size",
    "size_errors",
    "variable",
]
