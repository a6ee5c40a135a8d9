"""A training job with ``"tensorboard": true`` through a real RQ worker and Redis.

The job's event files land in ``<CNN_DATA_DIR>/tensorboard/<job id>/``, the job view says so
(relative to the data volume), TensorBoard's own reader finds the scalars the job reported in
its epoch snapshots, the histograms and the kernel pictures, and `cnn train logs` points there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.queue import JobQueue
from jobs.status import JobStatus
from tests.support.limits import EVENT_LIMIT_S
from tests.support.workers import REPO_ROOT, wait_until_ended
from tests.worker.helpers import tiny_spec

pytestmark = pytest.mark.integration


def f32(value: float | None) -> float:
    assert value is not None
    return float(np.float32(value))


def test_a_job_writes_event_files_that_tensorboard_reads_back(
    start_worker, job_queue: JobQueue, worker_env: dict[str, str]
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    start_worker()
    job_id = job_queue.submit(tiny_spec("digits-tb", epochs=2, tensorboard={"scalars_every": 5}))
    view = wait_until_ended(job_queue, job_id, EVENT_LIMIT_S)
    assert view.status is JobStatus.FINISHED, view.error
    assert view.tensorboard_dir == f"tensorboard/{job_id}"

    directory = Path(worker_env["CNN_DATA_DIR"]) / "tensorboard" / job_id
    assert [p.name.startswith("events.out.tfevents.") for p in directory.iterdir()] == [True]
    acc = EventAccumulator(
        str(directory), size_guidance={"scalars": 0, "histograms": 0, "images": 0}
    )
    acc.Reload()

    # every epoch end is a point, equal to what the job reported for that epoch
    loss = {p.step: p.value for p in acc.Scalars("train/loss")}
    accuracy = {p.step: p.value for p in acc.Scalars("train/accuracy")}
    val_accuracy = {p.step: p.value for p in acc.Scalars("validation/accuracy")}
    assert [e.epoch for e in view.epochs] == [1, 2]
    for epoch in view.epochs:
        assert loss[epoch.step] == f32(epoch.loss)
        assert accuracy[epoch.step] == f32(epoch.train_accuracy)
        assert val_accuracy[epoch.step] == f32(epoch.val_accuracy)
    # and in between, every 5th step
    last = view.epochs[-1].step
    ends = {e.step for e in view.epochs}
    assert sorted(loss) == sorted({s for s in range(5, last + 1, 5)} | ends)
    assert {"train/learning_rate", "train/images_per_s"} <= set(acc.Tags()["scalars"])

    histograms = set(acc.Tags()["histograms"])
    assert {
        "weights/0.conv2d.weight",
        "gradients/0.conv2d.weight",
        "weights/4.dense.bias",
    } <= histograms
    assert [h.step for h in acc.Histograms("gradients/4.dense.weight")] == sorted(ends)
    assert acc.Tags()["images"] == ["kernels/0.conv2d"]


def test_cnn_train_logs_names_the_directory_and_the_command(
    start_worker, job_queue: JobQueue, worker_env: dict[str, str]
) -> None:
    start_worker()
    job_id = job_queue.submit(tiny_spec("digits-tb-logs", tensorboard=True))
    plain = job_queue.submit(tiny_spec("digits-no-tb"))
    for each in (job_id, plain):
        assert wait_until_ended(job_queue, each, EVENT_LIMIT_S).status is JobStatus.FINISHED

    env = {**os.environ, **worker_env}
    env.pop("CNN_ADDRESS", None)
    shown = subprocess.run(
        [sys.executable, "-m", "cnn_cli", "train", "logs", job_id, "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EVENT_LIMIT_S,
    )
    assert shown.returncode == 0, shown.stderr
    logs = json.loads(shown.stdout)
    local = Path(worker_env["CNN_DATA_DIR"]).absolute() / "tensorboard" / job_id
    assert logs == {
        "job": job_id,
        "tensorboard_dir": f"tensorboard/{job_id}",
        "path": str(local),
        "exists": True,
        "started": True,
        "command": ["tensorboard", "--logdir", str(local)],
    }

    refused = subprocess.run(
        [sys.executable, "-m", "cnn_cli", "train", "logs", plain],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EVENT_LIMIT_S,
    )
    assert refused.returncode == 2
    assert f"job {plain} writes no TensorBoard event files" in refused.stderr
