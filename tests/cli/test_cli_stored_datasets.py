"""`cnn train submit` straight to Redis with a spec naming an uploaded data set: the CLI pins it
against the data store on CNN_DATA_DIR (as the server does), the worker trains on it; an unknown
data set is one line naming `dataset` and the stored ones, over Redis and over gRPC alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.stack import LocalStack
from core.datastore import DataStore, StoredDataset
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from tests.cli.conftest import run_cnn, spec, write_spec
from tests.support.stored_datasets import store_npz


def _store(stack: LocalStack) -> StoredDataset:
    """A new version of "cli-rgb": 18 RGB 10x10 float32 images, 3 named classes."""
    x = np.random.default_rng(3).uniform(0, 255, (18, 3, 10, 10)).astype(np.float32)
    return store_npz(
        DataStore(stack.data_dir), "cli-rgb", x, np.arange(18) % 3, ["red", "green", "blue"]
    )


def _rgb_spec(name: str, dataset: dict[str, object]) -> dict[str, object]:
    return spec(
        name,
        dataset=dataset,
        epochs=1,
        validation_split=0.0,
        input={"height": 8, "width": 8},
        architecture=[
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
    )


def test_submit_over_redis_pins_the_data_set_and_the_worker_trains_on_it(
    stack: LocalStack, tmp_path: Path
) -> None:
    stored = _store(stack)
    path = write_spec(tmp_path, _rgb_spec("cli-stored", {"name": "cli-rgb"}))
    env = {"CNN_DATA_DIR": str(stack.data_dir)}
    submitted = run_cnn("train", "submit", str(path), "--redis-url", stack.redis_url, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = run_cnn("train", "watch", job_id, "--redis-url", stack.redis_url, timeout=300)
    assert watched.returncode == 0, watched.stderr
    assert "finished: cli-stored version 1" in watched.stdout + watched.stderr
    settings = QueueSettings.from_env({"CNN_REDIS_URL": stack.redis_url})
    with JobQueue.connect(settings) as queue:
        view = queue.get(job_id)
    assert view.spec is not None
    pinned = {"name": "cli-rgb", "version": stored.version, "id": f"sha256:{stored.digest}"}
    assert view.spec["dataset"] == pinned
    assert view.spec["input"] == {"channels": 3, "height": 8, "width": 8, "resize": "stretch"}


def test_an_unknown_data_set_is_one_line_naming_it_over_redis_and_grpc(
    stack: LocalStack, tmp_path: Path
) -> None:
    _store(stack)
    path = write_spec(tmp_path, _rgb_spec("cli-missing", {"name": "cli-rgb", "version": 9}))
    env = {"CNN_DATA_DIR": str(stack.data_dir)}
    lines = []
    for route in (["--redis-url", stack.redis_url], ["--address", stack.grpc_address]):
        done = run_cnn("train", "submit", str(path), *route, env=env)
        assert done.returncode == 2 and not done.stdout, done.stderr
        lines.append(done.stderr.strip())
    assert lines[0] == lines[1]
    assert "invalid training spec: dataset: data set 'cli-rgb:9' not found" in lines[0]
    assert "cli-rgb (versions" in lines[0]
