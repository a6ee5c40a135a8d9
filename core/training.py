"""Training loop: seeded shuffling, minibatches, validation split, per-epoch metrics, early
stopping, exact-resume checkpoints, progress callbacks and cancellation.

Randomness (all derived from ``TrainConfig.seed``):
- the validation split: ``default_rng([seed, 1])`` permutation, fixed for the whole run;
- shuffling and augmentation: one generator ``default_rng([seed, 2])`` whose state is saved in
  every checkpoint (PCG64 state is JSON-able), together with the epoch's shuffling order and the
  position in it, the model arrays, the optimizer state and dropout generators. A run stopped
  at step k and resumed therefore ends with exactly the weights of an uninterrupted run.

Regression (``task="regression"``, a data set with float targets): the loss is MSE or Huber
(`core.losses`) on targets standardised with the training split's per-target mean and std
(`core.regression.TargetScaling`, the data set's ``target_scaling``, which the caller records in
the artifact); progress and metrics report MAE, RMSE (target units) and R² instead of accuracy.

The model is initialised by the caller (``Sequential.from_spec(..., seed=...)``); ``fit``
trains it in place in float32 on normalised images ``(x - mean[c]) / std[c]`` (the data set's
:attr:`~core.datasets.Dataset.normalisation`, which the caller records in the artifact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.augment import Augmentation, augment_batch
from core.checkpoint import load_checkpoint, save_checkpoint
from core.datasets import Dataset, Normalisation
from core.errors import ArtifactError, ShapeError, SpecError
from core.losses import huber_loss, mse_loss, softmax_cross_entropy
from core.model import Sequential
from core.optim import optimizer_from_config
from core.regression import RegressionCounts, RegressionReport, evaluate_regression
from core.schedules import schedule_from_config

EVAL_BATCH = 512


class EarlyStopping(BaseModel):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    with ``restore_best`` the best epoch's weights are restored at the end."""

    model_config = ConfigDict(extra="forbid")

    patience: int = Field(default=3, ge=1, le=1000)
    min_delta: float = Field(default=0.0, ge=0.0)
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    restore_best: bool = True


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    optimizer: dict[str, Any] = Field(default_factory=lambda: {"type": "adam", "lr": 1e-3})
    schedule: dict[str, Any] | None = None
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    validation_split: float = Field(default=0.1, ge=0.0, lt=1.0)
    early_stopping: EarlyStopping | None = None
    augmentation: Augmentation | None = None
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    task: Literal["classification", "regression"] = "classification"
    loss: Literal["cross_entropy", "mse", "huber"] | None = Field(
        default=None, description="default: cross_entropy (classification), mse (regression)"
    )
    huber_delta: float = Field(default=1.0, gt=0.0, le=1e6, description="huber loss delta")
    checkpoint_every: int | None = Field(
        default=None, ge=1, description="steps between checkpoints"
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.early_stopping is not None and self.validation_split == 0:
            raise ValueError("early_stopping needs validation_split > 0")
        if self.task == "regression":
            if self.loss == "cross_entropy":
                raise ValueError("loss: a regression task trains with 'mse' or 'huber'")
            if self.label_smoothing:
                raise ValueError("label_smoothing: only a classification task has labels")
            if self.early_stopping is not None and self.early_stopping.monitor != "val_loss":
                raise ValueError("early_stopping.monitor: a regression task monitors val_loss")
        elif self.loss not in (None, "cross_entropy"):
            raise ValueError(
                f"loss: {self.loss!r} is a regression loss; a classification task trains "
                "with 'cross_entropy' (set task to 'regression' for float targets)"
            )
        return self

    @property
    def loss_name(self) -> str:
        """The loss trained with: the ``loss`` field, else the task's default."""
        return self.loss or ("mse" if self.task == "regression" else "cross_entropy")


@dataclass(frozen=True)
class Progress:
    """One progress report. ``phase`` is "train" after a step, "epoch_end" after validation.

    ``epoch`` counts from 1; ``step`` is the number of optimizer steps done (1..total_steps);
    ``loss``/``train_accuracy`` are running means over the epoch so far.
    """

    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    train_accuracy: float | None
    val_accuracy: float | None
    images_per_s: float
    eta_s: float
    phase: str
    val_loss: float | None = None
    lr: float = 0.0
    #: Regression only: R² over the epoch so far, and the last epoch's validation figures.
    train_r2: float | None = None
    val_r2: float | None = None
    val_mae: float | None = None
    val_rmse: float | None = None


@dataclass
class TrainResult:
    """``history``: one dict per finished epoch (epoch, loss, accuracy, val_loss, val_accuracy,
    lr, time_s); ``metrics``: final train/val/test figures (JSON-able, for model.json)."""

    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    epochs_run: int
    steps_run: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    best_epoch: int | None = None


@dataclass
class _State:
    """Everything that must survive a checkpoint besides the arrays."""

    epoch: int = 0  # 0-based epoch in progress
    pos: int = 0  # steps done in that epoch
    global_step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    done: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch_time: float = 0.0
    #: Regression: the epoch's running `RegressionCounts` sums (JSON-able, for exact resume).
    regression_sums: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _layer_rngs(model: Sequential) -> dict[int, np.random.Generator]:
    """Generators held by layers (dropout), keyed by layer index, for exact resume."""
    out = {}
    for index, layer in enumerate(model.layers):
        rng = getattr(layer, "_rng", None)
        if isinstance(rng, np.random.Generator):
            out[index] = rng
    return out


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 1]).permutation(n)
    n_val = round(n * fraction)
    if fraction > 0 and n_val == 0:
        n_val = 1
    if n - n_val < 1:
        raise ShapeError(f"validation_split {fraction} leaves no training samples out of {n}")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _fingerprint(model: Sequential, config: TrainConfig, n_train: int) -> dict[str, Any]:
    found = {
        "config": config.model_dump(mode="json"),
        "architecture": model.architecture,
        "input_shape": list(model.input_shape),
        "n_train": n_train,
    }
    if model.frozen:  # the optimizer state covers only the trainable layers
        found["frozen"] = sorted(model.frozen)
    return found


def fit(
    model: Sequential,
    data: Dataset,
    config: TrainConfig,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    checkpoint_dir: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    normalisation: Normalisation | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.x_train`` (minus the validation split).

    Only ``model.trainable_parameters()`` are updated (the optimizer holds no state for frozen
    layers). Images are normalised with ``normalisation`` (default: the data set's own; a
    fine-tuned model passes its source's).

    ``should_stop()`` is polled before every step; when it returns True a checkpoint is saved
    (if ``checkpoint_dir``) and the result comes back with ``cancelled=True``. With
    ``checkpoint_dir`` a checkpoint is written every ``config.checkpoint_every`` steps and at
    each epoch end; a checkpoint found there at the start is resumed exactly.

    Raises:
        ShapeError: the data's image shape or class count does not fit the model.
        SpecError: invalid optimizer/schedule, or a checkpoint from a different run.
        ArtifactError: a corrupt checkpoint.
    """
    if data.input_shape != model.input_shape:
        raise ShapeError(
            f"data set images are {data.input_shape}, the model expects {model.input_shape}"
        )
    regression = config.task == "regression"
    if data.task != config.task:
        raise SpecError(
            f"task: the spec trains {config.task}, but data set {data.name!r} is a "
            f"{data.task} data set ({'float targets' if data.task == 'regression' else 'labels'})"
        )
    if data.num_outputs != model.num_classes:
        what = "targets" if regression else "classes"
        raise ShapeError(
            f"data set has {data.num_outputs} {what}, the model outputs {model.num_classes}"
        )
    if model.dtype != np.float32:
        raise SpecError(f"training runs in float32; the model is {model.dtype}")
    norm: Normalisation = normalisation or data.normalisation
    train_idx, val_idx = _split(data.x_train.shape[0], config.validation_split, config.seed)
    x_tr, y_tr = data.x_train[train_idx], data.y_train[train_idx]
    x_val = norm.apply(data.x_train[val_idx]) if val_idx.size else None
    y_val = data.y_train[val_idx] if val_idx.size else None
    scaling = data.target_scaling if regression else None
    # what the loss compares the outputs with: labels, or standardised targets
    y_fit = scaling.apply(y_tr) if scaling is not None else y_tr
    loss_name = config.loss_name

    def loss_of(outputs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        if loss_name == "mse":
            return mse_loss(outputs, y)
        if loss_name == "huber":
            return huber_loss(outputs, y, config.huber_delta)
        return softmax_cross_entropy(outputs, y, config.label_smoothing)

    def validate(x: np.ndarray, y: np.ndarray, split: str) -> dict[str, Any]:
        """Loss and accuracy (classification) or MAE/RMSE/R² (regression) on model input."""
        if scaling is None:
            val = model.evaluate(x, y, EVAL_BATCH)
            return {"loss": val.loss, "accuracy": val.accuracy, "metrics": val}
        outputs = model.logits(x, EVAL_BATCH)
        report = evaluate_regression(model, x, y, data.target_names or [], scaling, split=split)
        return {"loss": loss_of(outputs, scaling.apply(y))[1], "accuracy": None, "report": report}

    n = x_tr.shape[0]
    bs = min(config.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    if steps_per_epoch > 1 and n % bs == 1:
        steps_per_epoch -= 1  # a trailing batch of one sample is dropped (batch statistics)
    total_steps = steps_per_epoch * config.epochs

    optimizer = optimizer_from_config(dict(config.optimizer), model.trainable_parameters())
    schedule = schedule_from_config(config.schedule, optimizer.lr, total_steps)
    rng = np.random.default_rng([config.seed, 2])
    layer_rngs = _layer_rngs(model)
    fingerprint = _fingerprint(model, config, n)

    state = _State()
    num_targets = model.num_classes
    reg_counts = RegressionCounts(num_targets)
    order: np.ndarray | None = None
    best_arrays: dict[str, np.ndarray] | None = None
    if checkpoint_dir is not None:
        loaded = load_checkpoint(checkpoint_dir)
        if loaded is not None:
            arrays, saved = loaded
            if saved.get("fingerprint") != fingerprint:
                raise SpecError(
                    f"{checkpoint_dir}: the checkpoint belongs to a different run (config, "
                    "architecture or data differ); use an empty checkpoint directory"
                )
            try:
                model.load_named_arrays(_strip(arrays, "model."))
                optimizer.load_state_dict(_strip(arrays, "optim."))
            except (ArtifactError, SpecError) as exc:
                raise ArtifactError(f"{checkpoint_dir}: checkpoint does not fit: {exc}") from exc
            if "order" in arrays:
                order = arrays["order"].astype(np.int64)
            best = _strip(arrays, "best.")
            best_arrays = best or None
            rng.bit_generator.state = saved["rng"]
            for key, rng_state in saved.get("layer_rngs", {}).items():
                layer_rngs[int(key)].bit_generator.state = rng_state
            state = _State(**saved["train_state"])
            if state.regression_sums is not None:
                reg_counts = RegressionCounts.from_json(num_targets, state.regression_sums)

    def checkpoint() -> None:
        if checkpoint_dir is None:
            return
        state.regression_sums = reg_counts.to_json() if regression else None
        arrays = {f"model.{k}": v for k, v in model.named_arrays().items()}
        arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
        if order is not None:
            arrays["order"] = order
        if best_arrays is not None:
            arrays.update({f"best.{k}": v for k, v in best_arrays.items()})
        save_checkpoint(
            checkpoint_dir,
            arrays,
            {
                "fingerprint": fingerprint,
                "global_step": state.global_step,
                "rng": rng.bit_generator.state,
                "layer_rngs": {str(i): g.bit_generator.state for i, g in layer_rngs.items()},
                "train_state": state.to_json(),
            },
        )

    def result(cancelled: bool = False) -> TrainResult:
        return TrainResult(
            history=list(state.history),
            metrics=dict(state.metrics),
            epochs_run=len(state.history),
            steps_run=state.global_step,
            cancelled=cancelled,
            stopped_early=state.stopped_early,
            best_epoch=state.best_epoch,
        )

    if state.done:
        return result()

    aug = config.augmentation if config.augmentation and config.augmentation.active else None
    session_start = time.perf_counter()
    session_steps = 0
    while state.epoch < config.epochs and not state.stopped_early:
        epoch_start = time.perf_counter()
        if order is None:
            order = rng.permutation(n)
        while state.pos < steps_per_epoch:
            if should_stop is not None and should_stop():
                checkpoint()
                return result(cancelled=True)
            idx = order[state.pos * bs : (state.pos + 1) * bs]
            if state.pos == steps_per_epoch - 1:
                idx = order[state.pos * bs : n if n % bs != 1 else n - 1]
            xb_raw = x_tr[idx]
            if aug is not None:
                xb_raw = augment_batch(xb_raw, aug, rng)
            xb = norm.apply(xb_raw)
            yb = y_fit[idx]
            lr = schedule(state.global_step)
            logits = model.forward(xb, training=True)
            _, cost, dlogits = loss_of(logits, yb)
            if not math.isfinite(cost):
                raise SpecError(
                    f"training diverged at step {state.global_step + 1} (loss {cost}); "
                    f"lower the learning rate (now {lr:g})"
                )
            optimizer.zero_grad()
            model.backward(dlogits, input_grad=False)
            optimizer.step(lr=lr)
            state.pos += 1
            state.global_step += 1
            session_steps += 1
            state.loss_sum += cost * len(idx)
            if scaling is not None:
                reg_counts.add(scaling.undo(logits), y_tr[idx])
            else:
                state.correct += int((logits.argmax(axis=1) == yb).sum())
            state.seen += len(idx)
            if on_progress is not None:
                elapsed = time.perf_counter() - session_start
                per_step = elapsed / session_steps
                on_progress(
                    Progress(
                        epoch=state.epoch + 1,
                        epochs=config.epochs,
                        step=state.global_step,
                        total_steps=total_steps,
                        loss=state.loss_sum / state.seen,
                        train_accuracy=None if regression else state.correct / state.seen,
                        val_accuracy=state.history[-1]["val_accuracy"] if state.history else None,
                        images_per_s=session_steps * bs / elapsed if elapsed > 0 else 0.0,
                        eta_s=per_step * (total_steps - state.global_step),
                        phase="train",
                        lr=lr,
                        train_r2=_r2(reg_counts) if regression else None,
                        **_val_regression(state.history),
                    )
                )
            if config.checkpoint_every and state.global_step % config.checkpoint_every == 0:
                state.epoch_time += time.perf_counter() - epoch_start
                epoch_start = time.perf_counter()
                checkpoint()

        # --- epoch end: validation, history, early stopping ----------------------------------
        state.epoch_time += time.perf_counter() - epoch_start
        entry: dict[str, Any] = {
            "epoch": state.epoch + 1,
            "loss": state.loss_sum / max(1, state.seen),
            "accuracy": None if regression else state.correct / max(1, state.seen),
            "val_loss": None,
            "val_accuracy": None,
            "lr": schedule(max(0, state.global_step - 1)),
            "time_s": round(state.epoch_time, 3),
        }
        if regression:
            entry.update(_regression_figures(reg_counts.report(data.target_names or [], "train")))
        if x_val is not None and y_val is not None:
            val = validate(x_val, y_val, "validation")
            entry["val_loss"], entry["val_accuracy"] = val["loss"], val["accuracy"]
            if "report" in val:
                entry.update(_regression_figures(val["report"], "val_"))
        state.history.append(entry)
        if config.early_stopping is not None:
            es = config.early_stopping
            score = entry["val_loss"] if es.monitor == "val_loss" else -entry["val_accuracy"]
            if state.best_score is None or score < state.best_score - es.min_delta:
                state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch + 1, 0
                if es.restore_best:
                    best_arrays = model.named_arrays()
            else:
                state.bad_epochs += 1
                if state.bad_epochs >= es.patience:
                    state.stopped_early = True
        state.epoch += 1
        state.pos = 0
        state.loss_sum, state.correct, state.seen, state.epoch_time = 0.0, 0, 0, 0.0
        reg_counts = RegressionCounts(num_targets)
        order = None
        if on_progress is not None:
            elapsed = time.perf_counter() - session_start
            remaining = (config.epochs - state.epoch) * steps_per_epoch
            on_progress(
                Progress(
                    epoch=state.epoch,
                    epochs=config.epochs,
                    step=state.global_step,
                    total_steps=total_steps,
                    loss=entry["loss"],
                    train_accuracy=entry["accuracy"],
                    val_accuracy=entry["val_accuracy"],
                    images_per_s=session_steps * bs / elapsed if elapsed > 0 else 0.0,
                    eta_s=0.0
                    if state.stopped_early
                    else elapsed / max(1, session_steps) * remaining,
                    phase="epoch_end",
                    val_loss=entry["val_loss"],
                    lr=entry["lr"],
                    train_r2=entry.get("r2"),
                    **_val_regression(state.history),
                )
            )
        if state.epoch < config.epochs and not state.stopped_early:
            checkpoint()

    # --- finished: restore best weights, final metrics ---------------------------------------
    if best_arrays is not None and config.early_stopping and config.early_stopping.restore_best:
        model.load_named_arrays(best_arrays)
    if regression:
        state.metrics = _final_regression_metrics(data, norm, state, x_val, y_val, validate)
    else:
        state.metrics = final_metrics(model, data, norm, state, x_val, y_val)
    state.done = True
    checkpoint()
    return result()


def final_metrics(
    model: Sequential,
    data: Dataset,
    norm: Normalisation,
    state: _State,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
) -> dict[str, Any]:
    """Last epoch's train figures, validation and (if the data set has one) test metrics."""
    last = state.history[-1] if state.history else {}
    metrics: dict[str, Any] = {
        "train_loss": last.get("loss"),
        "train_accuracy": last.get("accuracy"),
        "epochs_run": len(state.history),
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
    }
    if x_val is not None and y_val is not None:
        val = model.evaluate(x_val, y_val, EVAL_BATCH)
        metrics["val_loss"], metrics["val_accuracy"] = val.loss, val.accuracy
    if data.x_test is not None and data.y_test is not None:
        test = model.evaluate(norm.apply(data.x_test), data.y_test, EVAL_BATCH)
        metrics["test_loss"], metrics["test_accuracy"] = test.loss, test.accuracy
        metrics["test"] = test.to_dict()
    return metrics


def _final_regression_metrics(
    data: Dataset,
    norm: Normalisation,
    state: _State,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    validate: Callable[[np.ndarray, np.ndarray, str], dict[str, Any]],
) -> dict[str, Any]:
    """The regression counterpart of `final_metrics`: losses (on standardised targets) and
    MAE / RMSE / R² (target units) of the last epoch, the validation and the test split."""
    last = state.history[-1] if state.history else {}
    metrics: dict[str, Any] = {
        "train_loss": last.get("loss"),
        "train_r2": last.get("r2"),
        "train_mae": last.get("mae"),
        "train_rmse": last.get("rmse"),
        "epochs_run": len(state.history),
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
    }
    if x_val is not None and y_val is not None:
        val = validate(x_val, y_val, "validation")
        metrics["val_loss"] = val["loss"]
        metrics.update(_regression_figures(val["report"], "val_"))
    if data.x_test is not None and data.y_test is not None:
        test = validate(norm.apply(data.x_test), data.y_test, "test")
        metrics["test_loss"] = test["loss"]
        metrics.update(_regression_figures(test["report"], "test_"))
        metrics["test"] = test["report"].model_dump(mode="json")
    return metrics


def _regression_figures(report: RegressionReport, prefix: str = "") -> dict[str, float]:
    """The mean R², MAE and RMSE of a report as flat ``{prefix}r2`` etc. entries."""
    return {f"{prefix}r2": report.r2, f"{prefix}mae": report.mae, f"{prefix}rmse": report.rmse}


def _r2(counts: RegressionCounts) -> float | None:
    """The mean R² of the running counts (None before two samples: R² needs a spread)."""
    if counts.samples < 2:
        return None
    return counts.report([str(i) for i in range(counts.num_targets)], "train").r2


def _val_regression(history: list[dict[str, Any]]) -> dict[str, float | None]:
    """The last finished epoch's validation MAE / RMSE / R² (progress fields), else None."""
    last = history[-1] if history else {}
    return {key: last.get(key) for key in ("val_r2", "val_mae", "val_rmse")}


def _strip(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
