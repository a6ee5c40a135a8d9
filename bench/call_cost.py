"""Fixed cost of one inference call, for `bench.core_ops`: a model that computes almost nothing
(flatten + dense 1 -> 2 on a 1x1x1 input), timed through ``model.predict_proba`` and through the
server's compute path (``ServedModel.preprocess`` + the batcher's locked forward pass of a
version loaded by ``server.model.load_version``, i.e. everything but gRPC and the event loop).
What is left is Python overhead, checks, allocation and the compiled call itself."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np

from bench.timing import median_us, warm

TINY_ARCH = [{"type": "flatten"}, {"type": "dense", "units": 2}]
TINY_SHAPE = (1, 1, 1)


def call_cost_us(budget: float = 0.5) -> dict[str, float]:
    """Median microseconds per batch-1 call of the tiny model: ``predict_proba`` (compiled
    plan), ``logits``, and the server's compute path."""
    from core.artifacts import make_meta, save_artifact
    from core.datasets import Normalisation
    from core.model import Sequential
    from server.model import load_version

    model = Sequential.from_spec(TINY_ARCH, TINY_SHAPE, seed=0)
    x = np.zeros((1, *TINY_SHAPE), np.float32)
    out: dict[str, float] = {}
    warm(lambda: model.predict_proba(x), 50)
    out["predict_proba"] = median_us(lambda: model.predict_proba(x), budget, 200)
    out["logits"] = median_us(lambda: model.logits(x), budget, 200)
    with tempfile.TemporaryDirectory(prefix="cnn-callcost-") as tmp:
        meta = make_meta(
            model,
            name="tiny",
            class_names=["a", "b"],
            normalisation=Normalisation(mean=[0.0], std=[1.0]),
            pixel_range=(0.0, 1.0),
        )
        save_artifact(Path(tmp), model, meta)
        loop = asyncio.new_event_loop()
        try:
            served = load_version(
                Path(tmp),
                "tiny",
                1,
                max_batch_size=64,
                max_queue_delay_s=0.001,
                max_queue_size=64,
                loop=loop,
            )
            batcher = served.batcher

            def server_path() -> None:
                batcher._forward_locked(served.preprocess(x))

            warm(server_path, 50)
            out["server_path"] = median_us(server_path, budget, 200)
            served.close()
        finally:
            loop.close()
    return out
