"""One training run, from spec to published model version. Knows nothing of Redis or RQ.

`run_training` loads the data set, builds the model (a warm start copies a published version's
weights into it first: `warm_start_model`), fits it with checkpoints in a per-job
directory (so a re-run of the same job resumes where the last checkpoint left off), then
publishes the artifact (with the evaluation report on the test split, when the data set has
one) through `core.repository.ModelRepository.publish` (hidden temp dir, fsync, atomic rename,
race-free version numbers) and only then removes the checkpoint.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.spec import TrainSpec
from worker.settings import WorkerSettings

if TYPE_CHECKING:
    from core.datasets import Dataset, Normalisation
    from core.model import Sequential
    from worker.training_events import TrainingEvents


class TrainingStopped(RuntimeError):
    """`should_stop` asked the run to stop: nothing was published, the checkpoint is kept."""


@dataclass
class TrainOutcome:
    """What a finished job returns (JSON-able through `as_result`)."""

    name: str
    version: int
    path: Path
    metrics: dict[str, Any]
    epochs_run: int
    resumed: bool
    timings: dict[str, float] = field(default_factory=dict)

    def as_result(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "path": str(self.path),
            "metrics": self.metrics,
            "epochs_run": self.epochs_run,
            "resumed": self.resumed,
            "timings": self.timings,
        }


def checkpoint_dir(settings: WorkerSettings, job_id: str) -> Path:
    """Where job `job_id` keeps its checkpoint (hidden: never listed as a model)."""
    return settings.checkpoints_dir / job_id


def has_checkpoint(path: Path) -> bool:
    from core.checkpoint import CHECKPOINT_JSON

    return (path / CHECKPOINT_JSON).is_file()


def load_training_data(spec: TrainSpec, settings: WorkerSettings) -> tuple[TrainSpec, Dataset]:
    """The data set ``spec`` names, its images brought to the spec's ``input``; and the spec
    with an uploaded data set pinned (`jobs.datasets.pin_dataset`: the payload may come from
    any client), which the artifact records.

    Raises:
        InvalidSpec: an uploaded data set that is no longer stored, or does not fit the model.
        DatasetError: a data set that cannot be loaded.
    """
    from core.datasets import conform_dataset, load_dataset
    from core.datastore import DataStore
    from core.stored_datasets import load_stored_dataset
    from jobs.datasets import input_shape, resolve_dataset

    spec, stored = resolve_dataset(spec, DataStore(settings.data_dir), settings.spec_limits())
    if stored is not None and spec.input is not None:
        return spec, load_stored_dataset(stored, input_shape(spec.input), spec.resize())
    data = load_dataset(spec.dataset, settings.data_dir)
    if spec.input is not None:
        data = conform_dataset(data, spec.input.shape_for(data.input_shape), spec.resize())
    return spec, data


def warm_start_model(
    spec: TrainSpec, settings: WorkerSettings, model: Sequential, data: Dataset
) -> tuple[TrainSpec, Normalisation, dict[str, Any]]:
    """Start ``model`` from the version ``spec.init_from`` names, checked again here (the
    payload may come from any client, the version may be gone): copy the matching layers'
    arrays, freeze the frozen ones.

    The model keeps the source's normalisation (its features were learned on inputs
    normalised that way; the data set's own statistics would shift every input the frozen
    layers see), expressed in the data set's pixel unit (`core.warm_start.rescale_normalisation`).

    Returns:
        the spec with the source version pinned, the normalisation to train and serve with,
        and the provenance the artifact records.

    Raises:
        InvalidSpec: the source is not published or does not fit (naming the field).
        ArtifactError: the source version's files are damaged.
    """
    from core.artifacts import load_artifact
    from core.repository import ModelRepository
    from core.warm_start import rescale_normalisation, warm_start
    from jobs.warm_start import resolve_init_from

    resolved = resolve_init_from(spec, ModelRepository(settings.models_dir), data.input_shape)
    source = load_artifact(resolved.path)
    warm_start(model, source.model, resolved.plan)
    normalisation = rescale_normalisation(
        source.meta.preprocessing, source.meta.input.pixel_range, data.pixel_range
    )
    init = resolved.spec.init_from
    assert init is not None and init.version is not None
    provenance = {
        "model": init.model,
        "version": init.version,
        "weights_sha256": source.meta.weights_sha256,
        "copied": list(resolved.plan.copied),
        "frozen": list(resolved.plan.frozen),
        "reset_head": init.reset_head,
    }
    return resolved.spec, normalisation, provenance


def tensorboard_dir(settings: WorkerSettings, job_id: str) -> Path:
    """Where job `job_id` writes its TensorBoard event files (`jobs.tensorboard`)."""
    from jobs.tensorboard import local_path, log_dir

    return local_path(settings.data_dir, log_dir(job_id))


def open_training_events(
    spec: TrainSpec, settings: WorkerSettings, job_id: str, model: Sequential
) -> TrainingEvents | None:
    """The job's TensorBoard event log when its spec asks for one (a retried job adds a new
    event file to the same directory), else None.

    Raises:
        OSError: the directory or event file cannot be created.
    """
    if spec.tensorboard is None:
        return None
    from worker.training_events import TrainingEvents

    return TrainingEvents(tensorboard_dir(settings, job_id), model, spec.tensorboard)


def _both(
    first: Callable[[Any], None] | None, second: Callable[[Any], None] | None
) -> Callable[[Any], None] | None:
    """One progress callback calling `first` then `second` (either may be None)."""
    if first is None or second is None:
        return first or second

    def call(report: Any) -> None:
        first(report)
        second(report)

    return call


def run_training(
    spec: TrainSpec,
    settings: WorkerSettings,
    *,
    job_id: str,
    on_progress: Callable[[Any], None] | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train `spec` and publish the result as the next version of ``spec.name``.

    Args:
        spec: a validated training spec.
        settings: where data, models and checkpoints live.
        job_id: names the checkpoint directory; the same id resumes the same run.
        on_progress: `core.training.Progress` callback (throttling is the caller's business).
            A spec with ``tensorboard`` also has every report written as TensorBoard events
            to `tensorboard_dir` (`worker.training_events`).
        on_stage: called with ("loaded" | "resuming" | "publishing", details) for status.
        should_stop: polled between steps by `fit` for a cooperative stop.

    Returns:
        the published version and the final metrics.

    Raises:
        DatasetError, SpecError: the spec cannot be trained (not retried by the worker).
    """
    from core.artifacts import make_meta, save_artifact
    from core.evaluation import Report, evaluate
    from core.model import Sequential
    from core.regression import evaluate_regression
    from core.repository import ModelRepository
    from core.training import fit

    stage = on_stage or (lambda _name, _details: None)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    spec, data = load_training_data(spec, settings)
    timings["load_data_s"] = round(time.monotonic() - t0, 4)

    t1 = time.monotonic()
    # sized before it is built: a data set's shape may only be known now that it is loaded
    spec.check_model(data.input_shape, settings.spec_limits(), num_classes=data.num_outputs)
    model = Sequential.from_spec(spec.architecture, data.input_shape, seed=spec.seed)
    normalisation, provenance = data.normalisation, None
    if spec.init_from is not None:
        spec, normalisation, provenance = warm_start_model(spec, settings, model, data)
    timings["build_model_s"] = round(time.monotonic() - t1, 4)

    ckpt = checkpoint_dir(settings, job_id)
    resumed = has_checkpoint(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    stage(
        "resuming" if resumed else "loaded",
        {
            "input_shape": list(data.input_shape),
            "train_images": int(data.x_train.shape[0]),
            "checkpoint": str(ckpt),
        },
    )

    events = open_training_events(spec, settings, job_id, model)
    t2 = time.monotonic()
    try:
        result = fit(
            model,
            data,
            spec.train_config(),
            on_progress=_both(on_progress, events),
            checkpoint_dir=ckpt,
            should_stop=should_stop,
            normalisation=normalisation,
        )
    finally:
        if events is not None:
            events.close()
    timings["fit_s"] = round(time.monotonic() - t2, 4)
    if result.cancelled:
        raise TrainingStopped(
            f"training stopped at step {result.steps_run}; checkpoint kept in {ckpt}"
        )

    metrics = dict(result.metrics)
    stage("publishing", {"metrics": metrics})
    t3 = time.monotonic()
    evaluation: Report | None = None  # a data set without a test split gets no report
    regression = data.target_names is not None
    if data.x_test is not None and data.y_test is not None:
        if regression:
            evaluation = evaluate_regression(
                model,
                data.x_test,
                data.y_test,
                data.target_names or [],
                data.target_scaling,
                normalisation=normalisation,
            )
        else:
            evaluation = evaluate(
                model, data.x_test, data.y_test, data.class_names, normalisation=normalisation
            )
    timings["evaluate_s"] = round(time.monotonic() - t3, 4)
    meta = make_meta(
        model,
        name=spec.name,
        class_names=list(data.class_names),
        normalisation=normalisation,
        pixel_range=data.pixel_range,
        resize=spec.resize(),
        metrics=metrics,
        dataset=spec.dataset.model_dump(mode="json"),
        job_id=job_id,
        init_from=provenance,
        target_names=data.target_names,
        target_scaling=data.target_scaling if regression else None,
    )

    def write(directory: Path) -> None:
        history = list(result.history) or None
        save_artifact(directory, model, meta, history=history, evaluation=evaluation)

    repository = ModelRepository(settings.models_dir)
    version = repository.publish(spec.name, write)
    shutil.rmtree(ckpt, ignore_errors=True)
    return TrainOutcome(
        name=spec.name,
        version=version,
        path=repository.path(spec.name, version),
        metrics=metrics,
        epochs_run=int(result.epochs_run),
        resumed=resumed,
        timings=timings,
    )
