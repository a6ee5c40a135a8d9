"""A published version carries its evaluation on the data set's held-out test split
(``evaluation.json`` + ``confusion_matrix.png``); a data set without a test split gets none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.artifacts import CONFUSION_MATRIX_PNG, EVALUATION_JSON, load_artifact
from core.datasets import load_dataset
from core.repository import ModelRepository
from jobs.queue import JobQueue
from jobs.status import JobStatus
from tests.support.limits import COLD_START_LIMIT_S
from tests.support.workers import wait_until_ended
from tests.worker.helpers import job_record, tiny_spec

pytestmark = pytest.mark.integration

LIMIT_S = COLD_START_LIMIT_S  # the first job of a fresh clone compiles the kernels


def test_a_published_version_carries_the_test_split_report_and_picture(
    start_worker, job_queue: JobQueue, models_dir: Path
) -> None:
    start_worker()
    job_id = job_queue.submit(tiny_spec("digits-report"))
    assert wait_until_ended(job_queue, job_id, LIMIT_S).status is JobStatus.FINISHED

    directory = ModelRepository(models_dir).path("digits-report", 1)
    loaded = load_artifact(directory)
    report = loaded.evaluation
    assert report is not None
    data = load_dataset({"name": "digits"})
    assert data.x_test is not None and data.y_test is not None
    assert report.split == "test" and report.samples == len(data.y_test)
    assert report.class_names == data.class_names
    assert [c.support for c in report.classes] == np.bincount(data.y_test, minlength=10).tolist()
    # the metrics keep test_accuracy, and it is the report's accuracy
    assert loaded.meta.metrics["test_accuracy"] == pytest.approx(report.accuracy)
    # the published model evaluated afresh gives the stored report
    again = loaded.evaluate(data.x_test, data.y_test)
    assert again.confusion_matrix == report.confusion_matrix
    assert again.loss == pytest.approx(report.loss, rel=1e-6)
    with Image.open(directory / CONFUSION_MATRIX_PNG) as picture:
        picture.verify()
        assert picture.format == "PNG"
    assert "evaluate_s" in job_record(job_queue, job_id)["timings"]


def test_a_data_set_without_test_split_publishes_no_report(
    start_worker, job_queue: JobQueue, models_dir: Path, worker_env: dict[str, str]
) -> None:
    data = load_dataset({"name": "digits"})
    np.savez(
        Path(worker_env["CNN_DATA_DIR"]) / "train-only.npz", x=data.x_train[:, 0], y=data.y_train
    )
    start_worker()
    spec = tiny_spec("digits-no-test", dataset={"name": "npz", "path": "train-only.npz"})
    assert wait_until_ended(job_queue, job_queue.submit(spec), LIMIT_S).status is (
        JobStatus.FINISHED
    )

    directory = ModelRepository(models_dir).path("digits-no-test", 1)
    assert load_artifact(directory).evaluation is None
    assert not (directory / EVALUATION_JSON).exists()
    assert not (directory / CONFUSION_MATRIX_PNG).exists()
