"""Fixtures of the CLI suite: the `cnn` command run as a user runs it, against real processes.

`stack` is redis-server, one RQ worker and the gRPC server (`cnn_cli.stack.LocalStack`, the
same start-up path as `cnn demo`); `run_cnn` runs ``python -m cnn_cli ARGS`` in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnn_cli.stack import LocalStack
from tests.support.workers import wait_listening

REPO_ROOT = Path(__file__).resolve().parents[2]

#: CNN_MAX_EPOCHS of the stack and of submits that queue a long job (3,000 epochs keep the
#: only worker busy while the cancel tests run).
LONG_JOB_MAX_EPOCHS = "10000"

#: Client settings a developer may have exported; tests set what they need explicitly.
CLIENT_VARIABLES = ("CNN_ADDRESS", "CNN_TOKEN", "CNN_CA_CERT", "CNN_TIMEOUT", "CNN_REDIS_URL")


def run_cnn(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """Run `cnn ARGS` (as ``python -m cnn_cli``); returns the CompletedProcess (text)."""
    base = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "cnn_cli", *args],
        cwd=REPO_ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spec(name: str, **overrides: Any) -> dict[str, Any]:
    """A small digits CNN: an epoch takes tens of ms, much less than Watch's polling interval
    (0.2 s), yet `cnn train watch` shows every epoch."""
    doc: dict[str, Any] = json.loads((REPO_ROOT / "examples" / "digits-small.json").read_text())
    doc.update(
        name=name,
        epochs=3,
        architecture=[
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
    )
    doc.update(overrides)
    return doc


def write_spec(directory: Path, doc: dict[str, Any]) -> Path:
    path = directory / f"{doc['name']}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="session")
def digit_pngs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    """Four held-out digits as 8-bit PNG files, and their labels."""
    from PIL import Image

    from core.datasets import load_dataset

    data = load_dataset({"name": "digits"})
    assert data.x_test is not None and data.y_test is not None
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i in range(4):
        gray = np.rint(data.x_test[i, 0].astype(np.float64) * 255.0 / data.pixel_range[1])
        buffer = io.BytesIO()
        Image.fromarray(gray.astype(np.uint8), mode="L").save(buffer, format="PNG")
        path = folder / f"digit{i}.png"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths, [int(y) for y in data.y_test[:4]]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """redis-server + one worker + the server, for the whole CLI suite."""
    local = LocalStack(
        tmp_path_factory.mktemp("cli-stack"),
        workers=1,
        extra_env={
            "CNN_PROGRESS_INTERVAL": "0.2",
            "CNN_POLL_INTERVAL_S": "0.2",
            "CNN_SHUTDOWN_GRACE_S": "2",
            "PYTHONUNBUFFERED": "1",
            "CNN_MAX_EPOCHS": LONG_JOB_MAX_EPOCHS,
            "CNN_SUBMIT_RATE_PER_MIN": "0",  # the whole CLI suite submits from one host
        },
    )
    with local:
        wait_listening(local.workers[0])
        yield local
