"""Size a model from its spec alone: parameters and training memory, allocating nothing.

:func:`estimate` parses the architecture like :meth:`core.model.Sequential.from_spec` and walks
the same shape checks (:func:`core.model.propagate_shapes`), so it raises exactly the errors
building would, but asks each layer only for :meth:`core.layers.Layer.shapes` (Python ints, no
arrays). A 2**30-unit dense layer is sized in microseconds instead of allocating terabytes.

Training memory per sample (bytes, b = the dtype's itemsize), approximated from above::

    activation_bytes_per_sample = b * (input + sum_l out_l)      # forward keeps every output
                                + sum_l workspace_l               # caches and kernel scratch
                                + b * max_l (in_l + out_l)        # gradients in flight

``input`` and ``out_l`` are per-sample element counts (the input is the normalised batch);
a layer whose output is a view of its input (flatten) has ``out_l = 0`` in the sum and
``in_l = 0`` in the max (its gradient is a view too). ``workspace_l`` is
:meth:`core.layers.Layer.training_workspace`: e.g. a max pool's int64 argmax, a dropout mask, a
convolution's im2col columns and padded planes. Backward holds one layer's output gradient and
input gradient at a time, hence the max. Per-batch memory is ``batch_size`` times this, plus the
batch-independent :attr:`ModelEstimate.parameter_bytes` for the values, as much again for their
gradients and :meth:`ModelEstimate.optimizer_state_bytes` for the optimizer (Adam: 2x).

The estimate does not depend on the machine (thread counts, BLAS buffers), so a client, the
server and the worker computing it for one spec get the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import SpecError
from core.model import layers_from_spec, propagate_shapes

if TYPE_CHECKING:
    from core.layers import Layer, LayerShapes, Spatial
    from core.summary import Summary


@dataclass(frozen=True)
class LayerEstimate:
    """One layer at its input shape: per-sample shapes and counts (bytes at the model dtype)."""

    index: int
    type_name: str
    config: dict[str, Any]  # the layer's options, defaults filled in
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameter_shapes: dict[str, tuple[int, ...]]
    parameters: int  # trainable values
    buffers: int  # non-trainable values (batchnorm running statistics)
    activation_elements: int  # new output values per sample (0 for a view of the input)
    workspace_bytes: int  # per sample: see Layer.training_workspace
    output_is_view: bool = False
    spatial: Spatial | None = None  # window geometry (receptive fields), as Layer.spatial()

    @property
    def gradient_elements(self) -> int:
        """Values per sample its backward holds: the output gradient and the input gradient
        it allocates (a view layer's input gradient is a view of the output gradient)."""
        out = math.prod(self.output_shape)
        return out if self.output_is_view else out + math.prod(self.input_shape)


@dataclass(frozen=True)
class ModelEstimate:
    """Sizes of a model built from a spec, per layer and in total (see the module docstring)."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerEstimate, ...]
    itemsize: int

    def summary(self) -> Summary:
        """The model's :class:`core.summary.Summary`, as ``Sequential.summary()`` gives it."""
        from core.summary import summarize_estimate

        return summarize_estimate(self)

    @property
    def parameters(self) -> int:
        """Trainable values."""
        return sum(layer.parameters for layer in self.layers)

    @property
    def buffers(self) -> int:
        """Non-trainable values."""
        return sum(layer.buffers for layer in self.layers)

    @property
    def parameter_bytes(self) -> int:
        """Bytes of the trainable values (their gradients take as much again)."""
        return self.parameters * self.itemsize

    @property
    def activation_bytes_per_sample(self) -> int:
        """Bytes per sample one training step holds (the module docstring's formula)."""
        outputs = math.prod(self.input_shape) + sum(e.activation_elements for e in self.layers)
        workspace = sum(e.workspace_bytes for e in self.layers)
        in_flight = max(e.gradient_elements for e in self.layers)
        return self.itemsize * (outputs + in_flight) + workspace

    def optimizer_state_bytes(self, optimizer: str) -> int:
        """Bytes the optimizer named ``optimizer`` keeps (Adam: two arrays per parameter).

        Raises:
            SpecError: unknown optimizer type.
        """
        from core.optim import OPTIMIZER_TYPES

        cls = OPTIMIZER_TYPES.get(optimizer)
        if cls is None:
            raise SpecError(
                f"unknown optimizer type {optimizer!r}; known types: {', '.join(OPTIMIZER_TYPES)}"
            )
        return cls.state_per_parameter * self.parameter_bytes

    def training_bytes(self, batch_size: int, optimizer: str) -> int:
        """Bytes of a training step on ``batch_size`` samples: parameters, their gradients,
        the optimizer state, the buffers and ``batch_size`` samples' activations."""
        fixed = 2 * self.parameter_bytes + self.buffers * self.itemsize
        return (
            fixed
            + self.optimizer_state_bytes(optimizer)
            + batch_size * self.activation_bytes_per_sample
        )


def estimate(
    architecture: Sequence[Any],
    input_shape: Sequence[int],
    *,
    dtype: type | np.dtype = np.float32,
) -> ModelEstimate:
    """Size the model ``Sequential.from_spec(architecture, input_shape, dtype=dtype)`` would
    build, without building it: memory use does not grow with the layer sizes.

    Raises:
        SpecError: exactly what ``Sequential.from_spec`` raises for the same arguments.
    """
    layers = layers_from_spec(architecture)
    found: list[tuple[tuple[int, ...], LayerShapes]] = []

    def shapes_only(layer: Layer, in_shape: tuple[int, ...], dt: np.dtype) -> tuple[int, ...]:
        shapes = layer.shapes(in_shape)
        found.append((in_shape, shapes))
        return shapes.out_shape

    checked_input, dt, outputs = propagate_shapes(layers, input_shape, dtype, shapes_only)
    itemsize = dt.itemsize
    rows = []
    for index, (layer, (in_shape, shapes), out_shape) in enumerate(
        zip(layers, found, outputs, strict=True)
    ):
        rows.append(
            LayerEstimate(
                index=index,
                type_name=layer.type_name,
                config=layer.config(),
                input_shape=in_shape,
                output_shape=out_shape,
                parameter_shapes=dict(shapes.parameters),
                parameters=shapes.parameter_count,
                buffers=shapes.buffer_count,
                activation_elements=0 if layer.output_is_view else math.prod(out_shape),
                workspace_bytes=layer.training_workspace(in_shape, out_shape, itemsize),
                output_is_view=layer.output_is_view,
                spatial=shapes.spatial,
            )
        )
    return ModelEstimate(checked_input, tuple(rows), itemsize)


__all__ = ["LayerEstimate", "ModelEstimate", "estimate"]
