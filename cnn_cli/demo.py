"""`cnn demo`: the whole system end to end on this machine, in about a minute.

Starts redis-server (its own, on a free loopback port, unless CNN_REDIS_URL is set), one RQ
worker and the gRPC server as local processes; submits a digits training job through the
server's Training API and follows it (as `cnn train submit --watch` does),
waits for the server to hot-load the published model, classifies held-out digits through the
gRPC API (PNG bytes and raw tensors), and stops everything again.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import CliError
from cnn_cli.processes import ProcessError
from cnn_cli.stack import LocalStack
from core.settings import redact_url

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "examples" / "digits-small.json"
MODEL = "digits"


def _demo_spec(epochs: int) -> dict[str, Any]:
    spec = json.loads(DEMO_SPEC.read_text())
    spec.update(name=MODEL, epochs=epochs)
    return spec


def _png(image: np.ndarray, pixel_max: float) -> bytes:
    """One (1, H, W) image in 0..pixel_max as an 8-bit grayscale PNG (0..255)."""
    from PIL import Image

    gray = np.clip(np.rint(image[0].astype(np.float64) * 255.0 / pixel_max), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(gray.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _wait_for_model(client: Any, version: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while version not in client.list_models().get(MODEL, []):
        if time.monotonic() > deadline:
            raise CliError(f"the server did not load {MODEL} version {version} in {timeout:.0f} s")
        time.sleep(0.2)


def run_demo(workdir: str, epochs: int) -> int:
    from rich.console import Console
    from rich.table import Table

    from cnn_cli.job_transport import GrpcJobs
    from cnn_cli.train import follow_with_bar
    from cnn_client import CnnClient
    from core.datasets import load_dataset
    from jobs.status import JobStatus

    console = Console()
    stack = LocalStack(Path(workdir), redis_url=os.environ.get("CNN_REDIS_URL") or None)
    console.print(
        f"[bold]cnn demo[/bold]: starting redis-server, a worker and the server in {workdir}/"
    )
    try:
        stack.start()
    except ProcessError as exc:
        raise CliError(f"the local stack did not start: {exc}") from None
    try:
        console.print(
            f"  redis {redact_url(stack.redis_url)}   gRPC {stack.grpc_address}   "
            f"models {stack.models_dir}"
        )
        with GrpcJobs(CnnClient(stack.grpc_address)) as jobs:
            job_id = jobs.submit(json.dumps(_demo_spec(epochs)))
            console.print(
                f"submitted training job [bold]{job_id}[/bold] ({DEMO_SPEC.name}, {epochs} epochs)"
            )
            job = follow_with_bar(jobs, job_id, timeout_s=None)
        if job.status is not JobStatus.FINISHED or job.model_version is None:
            return 1  # follow_with_bar printed why
        version = job.model_version

        data = load_dataset({"name": "digits"})
        assert data.x_test is not None and data.y_test is not None  # digits has a test split
        images, labels = data.x_test[:10], data.y_test[:10]
        with CnnClient(stack.grpc_address) as client:
            _wait_for_model(client, version)
            encoded = [_png(image, data.pixel_range[1]) for image in images]
            by_png = client.classify(encoded, model=MODEL, top_k=3)
            by_tensor = client.classify_batch(images, model=MODEL, top_k=1)
            info_model = client.get_model(MODEL)

        table = Table(title=f"{MODEL} v{by_png.version} over gRPC (held-out test images)")
        for column in ("#", "true", "PNG: top-3 (probability)", "raw tensor: top-1"):
            table.add_column(column)
        for i, (label, png, raw) in enumerate(
            zip(labels, by_png.results, by_tensor.results, strict=True)
        ):
            top3 = "  ".join(
                f"{name} ({p:.2f})"
                for name, p in zip(png.class_names, png.probabilities, strict=True)
            )
            table.add_row(str(i), str(int(label)), top3, raw.class_names[0])
        console.print(table)
        correct = sum(
            int(r.class_indices[0]) == int(y)
            for r, y in zip(by_tensor.results, labels, strict=True)
        )
        console.print(
            f"{correct}/{len(labels)} correct here; test accuracy recorded at training: "
            f"{info_model.metrics.get('test_accuracy', float('nan')):.3f}"
        )
        console.print(f"\nlayer summary with receptive fields:\n{info_model.summary_text}")
        return 0
    finally:
        stack.stop()
        console.print(f"stopped the stack; logs are in {stack.logs_dir}/")
