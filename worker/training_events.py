"""TensorBoard events of a training run: a `core.training.fit` progress callback.

What is written (tags as TensorBoard shows them; the step is the optimizer step):

- ``train/loss``, ``train/accuracy`` (or ``train/r2`` for a regression job),
  ``train/learning_rate``, ``train/images_per_s``: exactly the figures the job reports as its
  progress (loss and accuracy are running means over the epoch so far, as in ``cnn train
  watch``), every ``scalars_every`` steps and at each epoch's last step, so the points at epoch
  ends equal the job's epoch snapshots and the artifact's history;
- per epoch: ``validation/loss``, ``validation/accuracy`` (or ``validation/r2``, ``/mae``,
  ``/rmse``);
- every ``histograms_every`` epochs: ``weights/<layer>.<type>.<name>`` and
  ``gradients/<layer>.<type>.<name>`` for every parameter (the gradient of the epoch's last
  step; frozen layers have none);
- every ``images_every`` epochs: ``kernels/<layer>.conv2d`` for every conv layer
  (`worker.kernel_images.kernel_grid`) and ``kernels_rgb/<layer>.conv2d`` for a first conv
  layer on RGB input.

Cost: scalars are one small protobuf per logged step, serialised in the training thread and
written (CRC, file I/O) by the event file's own thread; histograms and images are made once per
epoch, next to the validation pass that already pauses training then. ``python -m
bench.tensorboard_overhead`` measures the whole.

A failure to write (disk full, volume gone) is logged once and stops the event log, never the
training: event files are not worth a training run.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from core.model import Sequential
    from jobs.spec import TensorBoardOptions
    from worker.event_file import EventFile

log = logging.getLogger("worker.tensorboard")


class TrainingEvents:
    """`on_progress` callback writing a run's TensorBoard events (see the module doc).

    Args:
        directory: the run's directory (created if missing).
        model: the model being trained (read at epoch ends for histograms and kernels).
        options: what to write and how often.

    Raises:
        OSError: the directory or event file cannot be created.
    """

    def __init__(self, directory: Path, model: Sequential, options: TensorBoardOptions) -> None:
        from worker.event_file import EventFile

        self.directory = directory
        self._model = model
        self._options = options
        self._file: EventFile | None = EventFile(directory)
        self._scalar_step: int | None = None  # the last step whose train scalars are written

    def __call__(self, report: Any) -> None:
        if self._file is None:
            return
        try:
            if report.phase == "epoch_end":
                self._epoch_end(self._file, report)
            elif report.step % self._options.scalars_every == 0:
                self._train_scalars(self._file, report)
        except (OSError, ValueError) as exc:  # the writer's IOError is an OSError
            log.warning(
                "TensorBoard events stopped (%s: %s); training goes on", type(exc).__name__, exc
            )
            self._close_quietly()

    def _train_scalars(self, file: EventFile, report: Any) -> None:
        file.scalars(
            report.step,
            {
                "train/loss": report.loss,
                "train/accuracy": report.train_accuracy,
                "train/r2": report.train_r2,
                "train/learning_rate": report.lr,
                "train/images_per_s": report.images_per_s,
            },
        )
        self._scalar_step = report.step

    def _epoch_end(self, file: EventFile, report: Any) -> None:
        step = report.step
        if self._scalar_step != step:  # the epoch's last step, whatever scalars_every says
            self._train_scalars(file, report)
        file.scalars(
            step,
            {
                "validation/loss": report.val_loss,
                "validation/accuracy": report.val_accuracy,
                "validation/r2": report.val_r2,
                "validation/mae": report.val_mae,
                "validation/rmse": report.val_rmse,
            },
        )
        every_h, every_i = self._options.histograms_every, self._options.images_every
        if every_h and report.epoch % every_h == 0:
            file.histograms(step, self._histograms())
        if every_i and report.epoch % every_i == 0:
            file.images(step, self._kernel_images())

    def _histograms(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self._model.layers):
            for name, param in layer.parameters().items():
                label = f"{index}.{layer.type_name}.{name}"
                arrays[f"weights/{label}"] = param.value
                if index not in self._model.frozen:
                    arrays[f"gradients/{label}"] = param.grad
        return arrays

    def _kernel_images(self) -> dict[str, np.ndarray]:
        from core.layers import Conv2D
        from worker.kernel_images import kernel_grid, rgb_filters

        images: dict[str, np.ndarray] = {}
        first = True
        for index, layer in enumerate(self._model.layers):
            if not isinstance(layer, Conv2D) or layer.weight is None:
                continue
            weight = layer.weight.value
            images[f"kernels/{index}.{layer.type_name}"] = kernel_grid(weight)
            if first and weight.shape[1] == 3:
                images[f"kernels_rgb/{index}.{layer.type_name}"] = rgb_filters(weight)
            first = False
        return images

    def close(self) -> None:
        """Write out everything pending and close the file (idempotent)."""
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            log.warning("TensorBoard event file not closed cleanly: %s", exc)
        self._file = None

    def _close_quietly(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # already failing: the warning is logged
                file.close()
