"""Fine-tuning runs: a spec with ``init_from`` starts from a published version's weights.

In process (`run_training`, no Redis): frozen layers are bit-identical in the published
``weights.npz``, the others changed, a reset head gives the new class count, the artifact
records where it started from and keeps the source's normalisation, a stopped run resumes with
its layers still frozen, and the worker checks the source again. Then once through a real worker
and Redis, end to end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.artifacts import WEIGHTS_NPZ, load_artifact
from core.datasets import load_digits
from core.repository import ModelRepository
from core.warm_start import rescale_normalisation
from jobs.errors import InvalidSpec
from jobs.queue import JobQueue
from jobs.spec import parse_spec
from jobs.status import JobStatus
from tests.support.limits import COLD_START_LIMIT_S
from tests.support.workers import wait_until_ended
from tests.worker.helpers import tiny_spec
from worker.settings import WorkerSettings
from worker.train import TrainingStopped, run_training

#: digits images of classes 5..9 only, labelled 0..4 and scaled to 0..240 of 0..255 (an npz
#: data set's pixel range): new classes in the same image domain as the source's.
NEW_CLASSES_NPZ = "digits-5-9.npz"


def _weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / WEIGHTS_NPZ, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _write_new_classes(data_dir: Path) -> None:
    digits = load_digits()
    train, test = digits.y_train >= 5, digits.y_test >= 5
    np.savez(
        data_dir / NEW_CLASSES_NPZ,
        x=digits.x_train[train, 0] * 15,
        y=digits.y_train[train] - 5,
        x_test=digits.x_test[test, 0] * 15,
        y_test=digits.y_test[test] - 5,
        classes=np.array(["5", "6", "7", "8", "9"]),
    )


@pytest.fixture(scope="module")
def trained_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding "digits" version 1, trained for two epochs."""
    root = tmp_path_factory.mktemp("source")
    settings = WorkerSettings.from_env(
        {"CNN_DATA_DIR": str(root / "data"), "CNN_MODELS_DIR": str(root / "models")}
    )
    run_training(parse_spec(tiny_spec("digits", epochs=2)), settings, job_id="source")
    return root / "models"


@pytest.fixture()
def settings(tmp_path: Path, trained_source: Path) -> WorkerSettings:
    shutil.copytree(trained_source, tmp_path / "models")
    (tmp_path / "data").mkdir()
    _write_new_classes(tmp_path / "data")
    return WorkerSettings.from_env(
        {"CNN_DATA_DIR": str(tmp_path / "data"), "CNN_MODELS_DIR": str(tmp_path / "models")}
    )


def _new_classes_spec(**init_from: Any) -> dict[str, Any]:
    spec = tiny_spec(
        "digits-5-9",
        dataset={"name": "npz", "path": NEW_CLASSES_NPZ},
        init_from={"model": "digits", **init_from},
        epochs=2,
    )
    spec["architecture"][-1]["units"] = 5
    return spec


def test_frozen_convs_are_bit_identical_and_the_reset_head_has_the_new_classes(
    settings: WorkerSettings,
) -> None:
    spec = _new_classes_spec(freeze=["conv2d"], reset_head=True)
    outcome = run_training(parse_spec(spec), settings, job_id="tune")
    source_dir = ModelRepository(settings.models_dir).path("digits", 1)
    source, tuned = _weights(source_dir), _weights(outcome.path)
    assert np.array_equal(tuned["0.weight"], source["0.weight"])
    assert np.array_equal(tuned["0.bias"], source["0.bias"])
    assert tuned["4.weight"].shape == (64, 5) and source["4.weight"].shape == (64, 10)
    loaded = load_artifact(outcome.path)
    assert loaded.meta.class_names == ["5", "6", "7", "8", "9"]
    assert outcome.metrics["test_accuracy"] > 0.35  # it learned: chance is 0.2 (bench: curves)


def test_the_artifact_records_its_source_and_keeps_the_source_normalisation(
    settings: WorkerSettings,
) -> None:
    spec = _new_classes_spec(freeze=[0], reset_head=True)
    outcome = run_training(parse_spec(spec), settings, job_id="tune")
    source = load_artifact(ModelRepository(settings.models_dir).path("digits", 1)).meta
    meta = load_artifact(outcome.path).meta
    assert meta.init_from == {
        "model": "digits",
        "version": 1,  # pinned although the spec named no version
        "weights_sha256": source.weights_sha256,
        "copied": [0],
        "frozen": [0],
        "reset_head": True,
    }
    # the source saw digits in 0..16, the new data set is in 0..255 units
    assert meta.preprocessing == rescale_normalisation(
        source.preprocessing, (0.0, 16.0), (0.0, 255.0)
    )


def test_without_freezing_every_copied_layer_is_trained(settings: WorkerSettings) -> None:
    spec = tiny_spec("digits-again", init_from={"model": "digits", "version": 1}, epochs=1)
    outcome = run_training(parse_spec(spec), settings, job_id="again")
    source = _weights(ModelRepository(settings.models_dir).path("digits", 1))
    tuned = _weights(outcome.path)
    assert sorted(tuned) == sorted(source)
    assert all(not np.array_equal(tuned[key], source[key]) for key in source)
    assert load_artifact(outcome.path).meta.init_from["frozen"] == []  # type: ignore[index]


def test_a_stopped_run_resumes_with_its_layers_still_frozen(settings: WorkerSettings) -> None:
    spec = parse_spec(_new_classes_spec(freeze=[0], reset_head=True, version=1))
    polls = {"n": 0}

    def stop_after_five_steps() -> bool:
        polls["n"] += 1
        return polls["n"] > 5

    with pytest.raises(TrainingStopped):
        run_training(spec, settings, job_id="stopped", should_stop=stop_after_five_steps)
    outcome = run_training(spec, settings, job_id="stopped")
    assert outcome.resumed
    source = _weights(ModelRepository(settings.models_dir).path("digits", 1))
    tuned = _weights(outcome.path)
    assert np.array_equal(tuned["0.weight"], source["0.weight"])
    assert not np.array_equal(tuned["4.bias"], np.zeros(5, np.float32))


def test_the_worker_checks_the_source_again(settings: WorkerSettings) -> None:
    spec = parse_spec(_new_classes_spec(freeze=[0], reset_head=True, version=2))
    with pytest.raises(InvalidSpec, match=r"init_from.version: model 'digits' has no version 2"):
        run_training(spec, settings, job_id="gone")


def test_a_worker_fine_tunes_a_submitted_spec_end_to_end(
    start_worker, worker_env: dict[str, str], models_dir: Path, trained_source: Path
) -> None:
    shutil.copytree(trained_source / "digits", models_dir / "digits")
    _write_new_classes(Path(worker_env["CNN_DATA_DIR"]))
    start_worker()
    repository = ModelRepository(models_dir)
    with JobQueue.connect(WorkerSettings.from_env(worker_env), models=repository) as queue:
        job_id = queue.submit(_new_classes_spec(freeze=["conv2d"], reset_head=True))
        view = wait_until_ended(queue, job_id, COLD_START_LIMIT_S)
    assert view.status is JobStatus.FINISHED, view.error
    assert view.spec is not None and view.spec["init_from"]["version"] == 1
    tuned = repository.path("digits-5-9", view.model_version or 0)
    assert np.array_equal(
        _weights(tuned)["0.weight"], _weights(repository.path("digits", 1))["0.weight"]
    )
    meta = load_artifact(tuned).meta
    assert meta.init_from is not None and meta.init_from["frozen"] == [0]
    assert meta.job_id == job_id
