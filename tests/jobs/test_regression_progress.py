"""A regression job's progress: R², MAE and RMSE travel from `core.training.Progress` through
the Redis job meta and the `cnn.v1` wire, and the CLI prints them instead of accuracy."""

from __future__ import annotations

import dataclasses

from cnn_cli.job_render import metrics_line, progress_line
from core.training import Progress as CoreProgress
from jobs.meta import epoch_snapshot, progress_from_core
from jobs.proto_codec import decode_epoch, decode_progress, encode_epoch, encode_progress

CORE = CoreProgress(
    epoch=2,
    epochs=5,
    step=40,
    total_steps=100,
    loss=0.05,
    train_accuracy=None,
    val_accuracy=None,
    images_per_s=900.0,
    eta_s=6.0,
    phase="epoch_end",
    val_loss=0.06,
    lr=0.003,
    train_r2=0.95,
    val_r2=0.93,
    val_mae=0.6,
    val_rmse=0.8,
)


def test_the_regression_figures_reach_the_job_view() -> None:
    view = progress_from_core(CORE, updated_at=10.0)
    assert (view.train_r2, view.val_r2, view.val_mae, view.val_rmse) == (0.95, 0.93, 0.6, 0.8)
    assert view.train_accuracy is None and view.val_accuracy is None
    snapshot = epoch_snapshot(view)
    assert snapshot.val_r2 == 0.93 and snapshot.as_progress().train_r2 == 0.95


def test_they_travel_on_the_wire_and_accuracy_stays_unreported() -> None:
    view = progress_from_core(CORE, updated_at=10.0)
    message = encode_progress(view)
    assert message.train_accuracy == 0.0 and message.HasField("val_r2")
    decoded = decode_progress(message)
    assert decoded == dataclasses.replace(view, phase=decoded.phase)
    assert decoded.train_accuracy is None  # not the wire's 0.0
    snapshot = epoch_snapshot(view)
    assert decode_epoch(encode_epoch(snapshot)) == snapshot


def test_a_classifier_progress_has_no_regression_figures_on_the_wire() -> None:
    view = progress_from_core(
        dataclasses.replace(CORE, train_accuracy=0.9, train_r2=None, val_r2=None), updated_at=1.0
    )
    message = encode_progress(view)
    assert not message.HasField("train_r2") and not message.HasField("val_r2")
    assert decode_progress(message).train_accuracy == 0.9


def test_the_cli_prints_r2_for_a_regression() -> None:
    line = progress_line(progress_from_core(CORE, updated_at=1.0))
    assert "R² 0.950" in line and "val R² 0.930" in line and "acc" not in line
    assert metrics_line({"test_r2": 0.97, "val_r2": 0.96}) == "val_r2 0.960, test_r2 0.970"
    assert metrics_line({"test_accuracy": 0.9}) == "test_accuracy 0.900"
