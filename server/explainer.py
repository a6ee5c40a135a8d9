"""Classifier.Explain's data plane: the saliency map and feature maps of one image.

`core.explain` runs a model's layers one by one and leaves caches in them, so it runs on a
private copy of each served version (`ServedModel.explain_network`, under its lock), never on
the network Classify uses. The work is long for the event loop (a forward and a backward pass
through the layer path, plus PNG encoding): it runs in one "explain" thread, one request at a
time, and its passes hold `COMPUTE_LOCK`, so they never overlap a Classify forward pass (the
batcher's inline passes only take the lock when it is free, and otherwise go to the compute
thread, which waits for it).
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from core.explain import feature_maps, saliency
from core.model import softmax
from core.pictures import Picture
from core.summary import ReceptiveField
from server import explain_pictures
from server.batcher import COMPUTE_LOCK
from server.errors import DeadlineExceeded, InvalidInput, LimitExceeded
from server.model import ServedModel

# One request at a time: its activations, gradients and pictures are the memory it holds.
_EXPLAIN = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")


@dataclass(frozen=True)
class ExplainLimits:
    """What one Explain request may ask for (from Settings).

    Attributes:
        max_layers: layers with feature maps (CNN_MAX_EXPLAIN_LAYERS).
        max_bytes: response bytes; `bytes_setting` names the setting it comes from (the
            smaller of CNN_MAX_EXPLAIN_BYTES and CNN_MAX_MESSAGE_BYTES).
    """

    max_layers: int
    max_bytes: int
    bytes_setting: str = "CNN_MAX_EXPLAIN_BYTES"

    @classmethod
    def of(cls, max_layers: int, max_explain_bytes: int, max_message_bytes: int) -> ExplainLimits:
        if max_message_bytes < max_explain_bytes:
            return cls(max_layers, max_message_bytes, "CNN_MAX_MESSAGE_BYTES")
        return cls(max_layers, max_explain_bytes, "CNN_MAX_EXPLAIN_BYTES")


@dataclass(frozen=True)
class ExplainAsk:
    """A checked request: the output to explain (None: the default) and the layers."""

    target: int | None
    layers: tuple[int, ...]
    want_png: bool


@dataclass(frozen=True)
class LayerMaps:
    """One layer's feature maps (C, H', W') float32 and how to draw/locate them."""

    index: int
    type: str
    maps: np.ndarray
    field: ReceptiveField
    columns: int
    tile_scale: int
    png: Picture | None


@dataclass(frozen=True)
class Explanation:
    """What Explain computed for one image.

    Attributes:
        outputs: (K,) probabilities (classification) or predictions in target units.
        target: the output explained; target_score its logit / standardised output.
        saliency: (H, W) float32, max over channels of |d score / d normalised input|.
    """

    model: ServedModel
    outputs: np.ndarray
    target: int
    target_score: float
    saliency: np.ndarray
    saliency_scale: int
    saliency_png: Picture | None
    layers: list[LayerMaps]


def _spatial(model: ServedModel) -> list[int]:
    return [i for i, shape in enumerate(model.network.shapes) if len(shape) == 3]


def select_layers(
    model: ServedModel,
    indices: list[int],
    types: list[str],
    skip: bool,
    limits: ExplainLimits,
) -> tuple[int, ...]:
    """The layers whose maps a request asks for, ascending: `indices` plus every layer of
    `types`; neither given: every conv2d layer; `skip`: none.

    Raises:
        InvalidInput: an index out of range or of a layer without (C, H', W') maps, an unknown
            type (naming the field and what the model has).
        LimitExceeded: more than `limits.max_layers` layers.
    """
    if skip:
        return ()
    layers = model.network.layers
    spatial = _spatial(model)
    names = [layer.type_name for layer in layers]
    chosen: set[int] = set()
    for position, index in enumerate(indices):
        if not 0 <= index < len(layers):
            raise InvalidInput(
                f"layers[{position}] is {index}; layer indices are in [0, {len(layers)})"
            )
        if index not in spatial:
            raise InvalidInput(
                f"layers[{position}]: layer {index} ({names[index]}) outputs "
                f"{tuple(model.network.shapes[index])}, not (C, H, W) feature maps; layers with "
                f"feature maps: {', '.join(map(str, spatial))}"
            )
        chosen.add(index)
    for position, name in enumerate(types):
        matches = [i for i in spatial if names[i] == name]
        if not matches:
            known = sorted({names[i] for i in spatial})
            raise InvalidInput(
                f"layer_types[{position}] is {name!r}; this model's layers with feature maps "
                f"are of types {', '.join(known)}"
            )
        chosen.update(matches)
    if not indices and not types:
        chosen = {i for i in spatial if names[i] == "conv2d"}
    if len(chosen) > limits.max_layers:
        raise LimitExceeded(
            f"the request asks for the feature maps of {len(chosen)} layers; "
            f"max_explain_layers is {limits.max_layers} (CNN_MAX_EXPLAIN_LAYERS)"
        )
    return tuple(sorted(chosen))


def check_target(model: ServedModel, target: int | None) -> None:
    """Raises InvalidInput naming `target` and its range when it is not an output index."""
    if target is None:
        return
    count = int(model.network.num_classes)
    if not 0 <= target < count:
        what = "target (output) indices" if model.is_regression else "class indices"
        raise InvalidInput(
            f"target is {target}; {what} of model {model.name!r} are in [0, {count})"
        )


def tensor_bytes(model: ServedModel, layers: tuple[int, ...]) -> int:
    """Bytes of the float32 tensors a response carries: saliency (H, W) and the maps."""
    _, height, width = model.spec.shape
    count = height * width + sum(math.prod(model.network.shapes[i]) for i in layers)
    return 4 * count


def check_size(size: int, limits: ExplainLimits, what: str) -> None:
    """Raises LimitExceeded when `size` bytes exceed the response limit, naming its setting."""
    if size > limits.max_bytes:
        raise LimitExceeded(
            f"{what} is {size} bytes; the Explain response limit is {limits.max_bytes} bytes "
            f"({limits.bytes_setting}); ask for fewer layers"
        )


def explain_now(model: ServedModel, pixels: np.ndarray, ask: ExplainAsk) -> Explanation:
    """Compute the explanation of `pixels` (1, C, H, W) in the pixel range, in this thread.

    Raises:
        InvalidInput: `ask.target` out of range (checked again: cheap).
    """
    check_target(model, ask.target)
    x = model.preprocess(pixels)
    with model.explain_lock:
        network = model.explain_network()
        with COMPUTE_LOCK:
            logits = np.asarray(network.forward(x, training=False), np.float64)[0]
            if ask.target is not None:
                target = ask.target
            else:
                target = 0 if model.is_regression else int(np.argmax(logits))
            grad_map = saliency(network, x, [target])[0].astype(np.float32)
            maps = feature_maps(network, x, ask.layers)
    if model.is_regression:
        outputs = np.asarray(model.meta.target_scaling.undo(logits[None]), np.float32)[0]
    else:
        outputs = softmax(logits[None])[0].astype(np.float32)
    rows = model.network.summary().rows
    height, width = grad_map.shape
    scale = explain_pictures.scale_for(height, width, explain_pictures.SALIENCY_MIN_SIDE)
    layers = []
    for index in ask.layers:
        m = maps[index][0].astype(np.float32, copy=False)
        columns = explain_pictures.grid_columns(m.shape[0])
        tile = explain_pictures.scale_for(m.shape[1], m.shape[2], explain_pictures.TILE_MIN_SIDE)
        png = explain_pictures.maps_png(m, tile, columns) if ask.want_png else None
        layer_type = model.network.layers[index].type_name
        layers.append(LayerMaps(index, layer_type, m, rows[index].field, columns, tile, png))
    return Explanation(
        model=model,
        outputs=outputs,
        target=target,
        target_score=float(logits[target]),
        saliency=grad_map,
        saliency_scale=scale,
        saliency_png=explain_pictures.saliency_png(grad_map, scale) if ask.want_png else None,
        layers=layers,
    )


async def explain(
    model: ServedModel, pixels: np.ndarray, ask: ExplainAsk, timeout: float
) -> Explanation:
    """`explain_now` in the explain thread, within `timeout` seconds.

    Raises:
        DeadlineExceeded: not done in time (a request still queued is dropped; one that
            started finishes in the thread and its result is discarded).
    """
    deadline = time.monotonic() + timeout

    def run() -> Explanation:
        if time.monotonic() > deadline:
            raise DeadlineExceeded(f"Explain waited past its deadline ({timeout:.3f} s)")
        return explain_now(model, pixels, ask)

    future = asyncio.get_running_loop().run_in_executor(_EXPLAIN, run)
    try:
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        raise DeadlineExceeded(
            f"Explain did not finish within the deadline ({timeout:.3f} s)"
        ) from None
