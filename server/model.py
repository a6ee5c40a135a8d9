"""A loaded model version as the server sees it: input spec, classes, batcher.

`load_version` is the only place that reads artifacts (through `core.artifacts`); it warms
the model up (compiles/loads the Numba kernels) before the version becomes visible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from server.batcher import COMPUTE_LOCK, Batcher, BatchObserver
from server.errors import InvalidInput

if TYPE_CHECKING:
    from core.artifacts import InputSpec
    from core.datasets import Normalisation
    from core.evaluation import Report

log = logging.getLogger(__name__)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Attribute or mapping access (ModelMeta sub-objects may be models or dicts)."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


@dataclass
class RequestStats:
    """Cumulative request counts and durations of one version (for ModelStatistics)."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    last_inference_ms: int = 0

    def record(self, ok: bool, seconds: float) -> None:
        ns = int(seconds * 1e9)
        if ok:
            self.success_count += 1
            self.success_ns += ns
        else:
            self.fail_count += 1
            self.fail_ns += ns
        self.last_inference_ms = int(time.time() * 1000)


@dataclass
class ServedModel:
    """One loaded model version with its own batcher."""

    name: str
    version: int
    spec: InputSpec  # read on every request: a frozen dataclass, cheap to read
    normalisation: Normalisation
    class_names: tuple[str, ...]
    meta: Any
    network: Any
    batcher: Batcher
    loaded_at: float = field(default_factory=time.time)
    stats: RequestStats = field(default_factory=RequestStats)
    #: The version's test-split report (``evaluation.json``), None when it has none.
    evaluation: Report | None = None
    #: "regression": the batcher answers predictions (N, K) in target units, not probabilities.
    task: str = "classification"
    target_names: tuple[str, ...] = ()
    #: Held while Explain uses `explain_network()` (its layers keep per-call caches).
    explain_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _explain_network: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def num_outputs(self) -> int:
        """Columns of what the batcher answers: K class probabilities or K targets."""
        return len(self.target_names) if self.is_regression else self.num_classes

    def __post_init__(self) -> None:
        # The normalisation of `core.datasets.Normalisation.apply`, precomputed once.
        norm = self.normalisation
        self._mean = np.asarray(norm.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        inv_std = (1.0 / np.asarray(norm.std, dtype=np.float64)).astype(np.float32)
        self._inv_std = inv_std.reshape(1, -1, 1, 1)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) pixels, already validated by a codec -> normalised float32 model input.

        Same arithmetic as `core.artifacts.preprocess` (whose range checks the codecs have
        already made, naming the request field), without re-validating per request.

        Raises:
            InvalidInput: `images` does not have shape (N, C, H, W) of this model.
        """
        if images.ndim != 4 or images.shape[1:] != self.spec.shape:
            raise InvalidInput(
                f"images have shape {images.shape}, the model expects (N, "
                f"{', '.join(map(str, self.spec.shape))})"
            )
        return (images.astype(np.float32, copy=False) - self._mean) * self._inv_std

    def submit(self, images: np.ndarray) -> Any:
        """Queue (N, C, H, W) pixel-range images; returns a `Pending` of (N, K) probabilities
        (a regression model: (N, K) predictions in target units)."""
        return self.batcher.submit(self.preprocess(images))

    def explain_network(self) -> Any:
        """A private copy of `network` for `core.explain`, built on first use; the caller holds
        `explain_lock`.

        `core.explain` runs the layers one by one and leaves activation caches and gradients
        in them, while `network` serves Classify through its compiled inference plan: sharing
        it would let an Explain and a forward pass corrupt each other's state.
        """
        if self._explain_network is None:
            from core.model import Sequential

            network = self.network
            copy = Sequential.from_spec(
                network.architecture, network.input_shape, dtype=network.dtype
            )
            copy.load_named_arrays(network.named_arrays())
            self._explain_network = copy
        return self._explain_network

    def close(self) -> None:
        self.batcher.close()
        self._explain_network = None

    def summary_dict(self) -> dict[str, Any]:
        """`core` summary as JSON-able dict plus the rendered text."""
        summary = self.network.summary()
        data = dict(summary.to_dict())
        data["text"] = str(summary)
        return data

    def metrics(self) -> dict[str, float]:
        raw = _get(self.meta, "metrics") or {}
        out: dict[str, float] = {}
        for key, value in dict(raw).items():
            if isinstance(value, bool | int | float):
                out[str(key)] = float(value)
        return out

    def architecture_json(self) -> str:
        return json.dumps(_get(self.meta, "architecture") or self.network.architecture)

    def meta_field(self, key: str) -> str:
        value = _get(self.meta, key)
        return "" if value is None else str(value)


def load_version(
    path: Path,
    name: str,
    version: int,
    *,
    max_batch_size: int,
    max_queue_delay_s: float,
    max_queue_size: int,
    loop: asyncio.AbstractEventLoop,
    inline_max_s: float = 0.001,
    observe: BatchObserver | None = None,
) -> ServedModel:
    """Load `path` (one version directory), warm it up and give it a batcher on `loop`.

    Raises:
        core.errors.ArtifactError (ValueError) and OSError: the version cannot be loaded.
        ValueError: the artifact's class list is unusable.
    """
    from core.artifacts import load_artifact

    started = time.perf_counter()
    loaded = load_artifact(path)
    network, meta = loaded.model, loaded.meta
    spec = meta.input  # validated by core.artifacts: shape >= 1, finite pixel range lo < hi
    class_names = tuple(str(c) for c in (_get(meta, "class_names") or []))
    num_classes = int(network.num_classes)
    scaling = meta.target_scaling  # set exactly for regression models (checked by ModelMeta)
    if not class_names and scaling is None:
        class_names = tuple(str(i) for i in range(num_classes))
    if scaling is None and len(class_names) != num_classes:
        raise ValueError(
            f"{path}: model.json lists {len(class_names)} class names, the network outputs "
            f"{num_classes} classes"
        )

    def run(x: np.ndarray) -> np.ndarray:
        if scaling is not None:  # a regression model: outputs un-standardised to target units
            return scaling.undo(network.logits(x, batch_size=max(len(x), 1)))
        return np.asarray(network.predict_proba(x, batch_size=max(len(x), 1)), dtype=np.float32)

    # Warm-up outside the batcher: compiles (or loads from the Numba cache) every kernel, so
    # the first real request after the swap is fast; the second, warm pass tells the batcher
    # what a forward pass costs. Runs under the process compute lock.
    warm = np.zeros((2, *spec.shape), dtype=np.float32)
    with COMPUTE_LOCK:
        run(warm)
        timed_from = time.perf_counter()
        run(warm)
        seconds_per_row = (time.perf_counter() - timed_from) / len(warm)
    batcher = Batcher(
        run,
        loop=loop,
        inline_max_s=inline_max_s,
        seconds_per_row=seconds_per_row,
        name=f"{name}:{version}",
        max_batch_size=max_batch_size,
        max_queue_delay_s=max_queue_delay_s,
        max_queue_size=max_queue_size,
        observe=observe,
    )
    model = ServedModel(
        name=name,
        version=version,
        spec=spec,
        normalisation=meta.preprocessing,
        class_names=class_names,
        meta=meta,
        network=network,
        batcher=batcher,
        evaluation=loaded.evaluation,
        task=meta.task,
        target_names=tuple(meta.target_names),
    )
    log.info(
        "loaded model %s version %d from %s in %.3f s (input %s, %d %s)",
        name,
        version,
        path,
        time.perf_counter() - started,
        spec.shape,
        num_classes,
        "targets" if scaling is not None else "classes",
    )
    return model
