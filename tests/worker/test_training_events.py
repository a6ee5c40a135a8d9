"""TensorBoard events of a training run, read back with TensorBoard's own reader.

A real `core.training.fit` on digits writes through `worker.training_events.TrainingEvents`;
`tensorboard.backend.event_processing.EventAccumulator` must find the figures the run reported
(within float32 rounding: TensorBoard stores scalars as float32), the histograms of every
parameter and the kernel pictures.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.datasets import load_dataset
from core.model import Sequential
from core.training import Progress, TrainConfig, fit
from jobs.spec import TensorBoardOptions
from worker.kernel_images import KERNEL_PX, kernel_grid, rgb_filters
from worker.training_events import TrainingEvents

ARCHITECTURE: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 3, "kernel_size": 3},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def accumulate(directory: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(
        str(directory), size_guidance={"scalars": 0, "histograms": 0, "images": 0}
    )
    return acc.Reload()


def f32(value: float) -> float:
    """`value` as TensorBoard stores it (float32 ``simple_value``)."""
    return float(np.float32(value))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two epochs on digits with scalars every 3 steps; the reports and the reader."""
    directory = tmp_path_factory.mktemp("tb") / "tensorboard" / "job-1"
    data = load_dataset({"name": "digits"})
    model = Sequential.from_spec(ARCHITECTURE, data.input_shape, seed=0)
    events = TrainingEvents(directory, model, TensorBoardOptions(scalars_every=3))
    reports: list[Progress] = []

    def on_progress(report: Progress) -> None:
        reports.append(report)
        events(report)

    config = TrainConfig(epochs=2, batch_size=64, seed=0, validation_split=0.1)
    result = fit(model, data, config, on_progress=on_progress)
    events.close()
    return {
        "directory": directory,
        "reports": reports,
        "result": result,
        "acc": accumulate(directory),
    }


def test_train_scalars_are_the_reported_figures_every_3_steps_and_at_epoch_ends(run) -> None:
    acc, reports = run["acc"], run["reports"]
    ends = [r.step for r in reports if r.phase == "epoch_end"]
    expected = {
        r.step: r for r in reports if r.phase == "train" and (r.step % 3 == 0 or r.step in ends)
    }
    for tag, field in [
        ("train/loss", "loss"),
        ("train/accuracy", "train_accuracy"),
        ("train/learning_rate", "lr"),
    ]:
        points = acc.Scalars(tag)
        assert [p.step for p in points] == sorted(expected), tag
        assert all(p.value == f32(getattr(expected[p.step], field)) for p in points), tag


def test_epoch_end_points_equal_the_history(run) -> None:
    acc, history = run["acc"], run["result"].history
    ends = [r.step for r in run["reports"] if r.phase == "epoch_end"]
    loss = {p.step: p.value for p in acc.Scalars("train/loss")}
    val_acc = {p.step: p.value for p in acc.Scalars("validation/accuracy")}
    val_loss = {p.step: p.value for p in acc.Scalars("validation/loss")}
    assert sorted(val_acc) == ends
    for step, epoch in zip(ends, history, strict=True):
        assert loss[step] == f32(epoch["loss"])
        assert val_acc[step] == f32(epoch["val_accuracy"])
        assert val_loss[step] == f32(epoch["val_loss"])


def test_every_parameter_has_weight_and_gradient_histograms_each_epoch(run) -> None:
    acc = run["acc"]
    tags = set(acc.Tags()["histograms"])
    names = ["0.conv2d.weight", "0.conv2d.bias", "3.conv2d.weight", "3.conv2d.bias"]
    names += ["6.dense.weight", "6.dense.bias"]
    assert tags == {f"{kind}/{name}" for kind in ("weights", "gradients") for name in names}
    ends = [r.step for r in run["reports"] if r.phase == "epoch_end"]
    weights = acc.Histograms("weights/0.conv2d.weight")
    assert [h.step for h in weights] == ends
    last = weights[-1].histogram_value
    assert last.num == 4 * 1 * 3 * 3 and sum(last.bucket) == last.num
    assert last.min <= last.max and last.bucket_limit[-1] == last.max


def test_each_conv_layer_has_a_kernel_picture_each_epoch(run) -> None:
    acc = run["acc"]
    assert set(acc.Tags()["images"]) == {"kernels/0.conv2d", "kernels/3.conv2d"}
    first = acc.Images("kernels/0.conv2d")
    assert len(first) == 2
    # 4 filters x 1 channel of 3x3 kernels drawn 24 px wide (zoom 8) with 1-px lines
    assert (first[-1].height, first[-1].width) == (4 * 25 + 1, 1 * 25 + 1)
    second = acc.Images("kernels/3.conv2d")[-1]
    assert (second.height, second.width) == (3 * 25 + 1, 4 * 25 + 1)


def test_files_are_world_readable_whatever_the_umask(tmp_path: Path) -> None:
    data = load_dataset({"name": "digits"})
    model = Sequential.from_spec(ARCHITECTURE, data.input_shape, seed=0)
    old = os.umask(0o077)
    try:
        events = TrainingEvents(tmp_path / "tensorboard" / "j", model, TensorBoardOptions())
        events.close()
    finally:
        os.umask(old)
    for path in (tmp_path / "tensorboard", tmp_path / "tensorboard" / "j"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
    (event_file,) = (tmp_path / "tensorboard" / "j").iterdir()
    assert event_file.name.startswith("events.out.tfevents.")
    assert stat.S_IMODE(event_file.stat().st_mode) == 0o644


def test_a_histogram_counts_every_finite_value_in_equal_buckets_from_min_to_max(
    tmp_path: Path,
) -> None:
    from worker.event_file import HISTOGRAM_BUCKETS, EventFile

    file = EventFile(tmp_path)
    values = np.array([0.0, 3.0, 1.0, 1.5, np.nan, 2.999, np.inf], np.float32)
    histogram = file._histogram(values)
    assert (histogram.min, histogram.max, histogram.num) == (0.0, 3.0, 5)
    assert histogram.sum == pytest.approx(8.499, rel=1e-6)
    assert histogram.sum_squares == pytest.approx(1 + 2.25 + 9 + 2.999**2, rel=1e-6)
    # 30 buckets of 0.1: 0.0 in the first, 1.0 in the 11th, 1.5 in the 16th, 2.999 and the
    # maximum 3.0 in the last
    expected = [0.0] * HISTOGRAM_BUCKETS
    for bucket in (0, 10, 15, 29, 29):
        expected[bucket] += 1
    assert list(histogram.bucket) == expected
    assert histogram.bucket_limit[0] == pytest.approx(0.1) and histogram.bucket_limit[-1] == 3.0
    constant = file._histogram(np.zeros(7, np.float32))
    assert (list(constant.bucket), list(constant.bucket_limit)) == ([7.0], [0.0])
    file.close()


def test_a_kernel_grid_puts_filters_in_rows_channels_in_columns_on_one_scale() -> None:
    weight = np.zeros((2, 3, 2, 2), np.float32)
    weight[0, 1, 0, 0] = 4.0  # the largest |w|: full red
    weight[1, 2, 1, 1] = -2.0  # half of it: half blue
    grid = kernel_grid(weight)
    z = KERNEL_PX // 2  # a 2x2 kernel is drawn 24x24
    assert grid.shape == (2 * (2 * z + 1) + 1, 3 * (2 * z + 1) + 1, 3)
    top, left = 1, 1 + (2 * z + 1)  # filter 0, channel 1
    assert grid[top, left].tolist() == [255, 0, 0]
    assert grid[top + z, left + z].tolist() == [255, 255, 255]  # a zero weight is white
    top, left = 1 + (2 * z + 1) + z, 1 + 2 * (2 * z + 1) + z  # filter 1, channel 2, (1, 1)
    assert grid[top, left].tolist() == [128, 128, 255]
    assert grid[0, 0].tolist() == [128, 128, 128]  # the separating lines


def test_rgb_filters_need_three_input_channels_and_draw_one_picture_each() -> None:
    weight = np.random.default_rng(0).normal(size=(5, 3, 3, 3))
    picture = rgb_filters(weight)
    z = -(-KERNEL_PX // 3)
    assert picture.shape == (3 * z + 2, 5 * (3 * z + 1) + 1, 3)
    with pytest.raises(ValueError, match="3 input channels"):
        rgb_filters(weight[:, :2])


def test_a_write_that_fails_stops_the_event_log_not_the_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = load_dataset({"name": "digits"})
    model = Sequential.from_spec(ARCHITECTURE, data.input_shape, seed=0)
    events = TrainingEvents(tmp_path / "j", model, TensorBoardOptions())
    assert events._file is not None
    events._file.close()  # what a lost volume looks like to the writer: "Writer is closed"
    report = Progress(
        epoch=1,
        epochs=1,
        step=1,
        total_steps=1,
        loss=1.0,
        train_accuracy=0.5,
        val_accuracy=None,
        images_per_s=1.0,
        eta_s=0.0,
        phase="epoch_end",
        lr=0.1,
    )  # fmt: skip  (an epoch end writes its histograms at once)
    with caplog.at_level("WARNING", logger="worker.tensorboard"):
        events(report)  # no exception
        events(report)  # and nothing more is tried
    assert [r.message for r in caplog.records if "TensorBoard events stopped" in r.message]
    assert len(caplog.records) == 1
    events.close()
