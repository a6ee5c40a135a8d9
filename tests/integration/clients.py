"""How the suite talks to the stack: only through public interfaces.

- training: the `cnn train` command line (submit, watch, status --json), as a user runs it;
- classification: the own gRPC API (cnn.v1.Classifier) with the generated stubs, and the
  Open Inference Protocol (KServe V2) with NVIDIA's tritonclient;
- health: grpc.health.v1; workers: RQ's worker registry in Redis (what `rq info` shows).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from proto.cnn.v1 import classifier_pb2, classifier_pb2_grpc
from tests.support.limits import COLD_START_LIMIT_S

#: Small CNN on scikit-learn's 8x8 digits: a few seconds per epoch on one core.
DIGITS_ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def digits_spec(name: str, *, epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """A training spec (the job payload) for the digits data set."""
    return {
        "name": name,
        "description": "integration suite",
        "dataset": {"name": "digits"},
        "architecture": DIGITS_ARCHITECTURE,
        "epochs": epochs,
        "batch_size": 32,
        "optimizer": {"type": "adam", "lr": 0.003},
        "seed": seed,
        "validation_split": 0.1,
        "timeout_s": 600,
    }


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> CliResult:
        if self.returncode != 0:
            raise AssertionError(
                f"cnn exited with {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )
        return self


def cnn(
    *args: str, redis_url: str | None = None, address: str | None = None, timeout: float = 600.0
) -> CliResult:
    """Run the `cnn` command line (``python -m cnn_cli``) against `redis_url` (the job queue
    itself) or `address` (the gRPC server), one of them."""
    target = ["--redis-url", redis_url] if redis_url is not None else ["--address", str(address)]
    proc = subprocess.run(
        [sys.executable, "-m", "cnn_cli", *args, *target],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def submit(
    spec: dict[str, Any], workdir: Path, redis_url: str | None = None, address: str | None = None
) -> str:
    """`cnn train submit spec.json` over Redis or gRPC: returns the job id it prints."""
    path = workdir / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    result = cnn("train", "submit", str(path), redis_url=redis_url, address=address)
    out = result.check().stdout.split()
    assert out, "cnn train submit printed no job id"
    return out[-1]


def job_status(job_id: str, redis_url: str) -> dict[str, Any]:
    """`cnn train status --json`."""
    result = cnn("train", "status", job_id, "--json", redis_url=redis_url).check()
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def wait_for_workers(redis_url: str, count: int, timeout: float = COLD_START_LIMIT_S) -> int:
    """Wait until at least `count` RQ workers are registered (after their compile-cache
    warm-up); returns how many are."""
    import redis
    from rq import Worker

    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(redis_url) as connection:
        while True:
            n = Worker.count(connection=connection)
            if n >= count:
                return n
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} RQ workers registered after {timeout:.0f} s, need {count}")
            time.sleep(0.25)


def digits_images(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """`n` digits images as uint8 (N, 1, 8, 8) in the data set's pixel range 0..16, and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The tail of the data set: mostly the held-out part of the worker's split.
    images = digits.images[-n:].astype(np.uint8)[:, None, :, :]
    return images, digits.target[-n:].astype(np.int64)


class OwnApi:
    """cnn.v1.Classifier over one channel."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = classifier_pb2_grpc.ClassifierStub(self._channel)

    def __enter__(self) -> OwnApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def list_models(self) -> dict[str, list[int]]:
        reply = self._stub.ListModels(classifier_pb2.ListModelsRequest(), timeout=10)
        # Loaded models only (ListModels also lists unloaded ones, without versions).
        return {m.name: list(m.versions) for m in reply.models if m.versions}

    def wait_for_model(self, name: str, version: int, timeout: float = COLD_START_LIMIT_S) -> None:
        """Wait until the server has loaded `name` at `version` (it hot-loads new versions;
        the server's first model compiles the inference kernels when the cache is cold)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if version in self.list_models().get(name, []):
                    return
            except grpc.RpcError:
                pass  # a restarting server
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} v{version} not loaded after {timeout:.0f} s")
            time.sleep(0.2)

    def classify(self, name: str, images: np.ndarray, version: int = 0) -> tuple[int, np.ndarray]:
        """Classify uint8 (N, C, H, W) images; returns (version used, top-1 class per image)."""
        batch = classifier_pb2.Tensor(
            dtype=classifier_pb2.DATA_TYPE_UINT8,
            shape=list(images.shape),
            data=np.ascontiguousarray(images, dtype=np.uint8).tobytes(),
        )
        reply = self._stub.Classify(
            classifier_pb2.ClassifyRequest(model=name, version=version, batch=batch, top_k=1),
            timeout=30,
        )
        return reply.version, np.array([r.class_indices[0] for r in reply.results])


def classify_v2(address: str, name: str, images: np.ndarray) -> np.ndarray:
    """Top-1 class per image through KServe V2 ModelInfer, with tritonclient."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(url=address)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(name)
        metadata = client.get_model_metadata(name, as_json=True)
        spec = metadata["inputs"][0]
        dtype = np.uint8 if spec["datatype"] == "UINT8" else np.float32
        tensor = triton.InferInput(spec["name"], list(images.shape), spec["datatype"])
        tensor.set_data_from_numpy(images.astype(dtype))
        outputs = [triton.InferRequestedOutput(o["name"]) for o in metadata["outputs"]]
        result = client.infer(name, [tensor], outputs=outputs, client_timeout=30)
        probabilities = result.as_numpy("probabilities")
        assert probabilities is not None, "ModelInfer returned no 'probabilities' output"
        return np.asarray(probabilities).argmax(axis=1)
    finally:
        client.close()
