"""Helpers shared by the worker tests (specs, the `cnn` CLI, polling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def tiny_spec(name: str = "digits-tiny", **overrides: Any) -> dict[str, Any]:
    """A small CNN on digits: ~1.5 s per epoch on two shared cores."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"name": "digits"},
        "architecture": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
        "epochs": 1,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.003},
        "seed": 0,
        "validation_split": 0.1,
    }
    spec.update(overrides)
    return spec


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cnn_cli ARGS` (the `cnn` command) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "cnn_cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_spec(directory: Path, spec: dict[str, Any], filename: str = "spec.json") -> Path:
    path = directory / filename
    path.write_text(json.dumps(spec))
    return path
