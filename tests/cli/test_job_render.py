"""`cnn_cli.job_render`: how a job view reads, worked out by hand for fixed views."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cnn_cli import job_render as render
from jobs.status import JobStatus
from jobs.views import JobView, Phase, Progress

PROGRESS = Progress(
    epoch=2,
    epochs=3,
    step=20,
    total_steps=30,
    loss=0.41204,
    train_accuracy=0.8734,
    val_accuracy=0.861,
    images_per_s=1234.4,
    eta_s=72.9,
    phase=Phase.TRAINING,
)
ENQUEUED = 1767225600.0  # 2026-01-01 00:00:00 UTC

FINISHED = JobView(
    id="job-1",
    status=JobStatus.FINISHED,
    model="digits",
    progress=PROGRESS,
    model_version=3,
    metrics={"test_accuracy": 0.9049, "val_accuracy": 0.9125, "loss": 0.3},
    enqueued_at=ENQUEUED,
)
FAILED = JobView(id="job-2", status=JobStatus.FAILED, model="digits", error="out of memory")


def test_progress_line_rounds_each_figure_and_writes_eta_as_minutes_and_seconds() -> None:
    # ETA 72.9 s -> int 72 -> 1:12; 1234.4 img/s -> 1234
    assert render.progress_line(PROGRESS) == (
        "loss 0.4120  acc 0.873  val 0.861  1234 img/s  ETA 1:12"
    )


def test_progress_line_leaves_out_figures_not_reported() -> None:
    early = Progress(epoch=1, epochs=3, step=0, total_steps=30, phase=Phase.LOADING)
    assert render.progress_line(early) == ""


def test_metrics_line_names_the_headline_metrics_in_a_fixed_order() -> None:
    assert render.metrics_line(FINISHED.metrics) == "val_accuracy 0.912, test_accuracy 0.905"
    assert render.metrics_line({}) == "no metrics"


def test_outcome_line_says_how_the_job_ended() -> None:
    assert render.outcome_line(FINISHED) == (
        "finished: digits version 3 (val_accuracy 0.912, test_accuracy 0.905)"
    )
    assert render.outcome_line(FAILED) == "failed: out of memory"
    cancelled = JobView(id="j", status=JobStatus.CANCELLED)
    assert render.outcome_line(cancelled) == "cancelled: no reason recorded"


def test_status_block_has_one_labelled_line_per_fact() -> None:
    enqueued = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ENQUEUED))
    assert render.status_block(FINISHED).splitlines() == [
        "job      job-1",
        "model    digits",
        "status   finished",
        "progress epoch 2/3 step 20/30  loss 0.4120  acc 0.873  val 0.861  1234 img/s  ETA 1:12",
        "result   digits version 3 (val_accuracy 0.912, test_accuracy 0.905)",
        f"times    enqueued {enqueued}, started -, ended -",
    ]
    assert "error    out of memory" in render.status_block(FAILED).splitlines()


def test_list_table_has_the_list_columns_and_one_row_per_job() -> None:
    table = render.list_table([FINISHED, FAILED])
    header = table.splitlines()[1]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == list(render.LIST_COLUMNS)
    rows = [line for line in table.splitlines() if "job-" in line]
    cells = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    assert [c[:5] for c in cells] == [
        ["job-1", "digits", "finished", "20/30", "3"],
        ["job-2", "digits", "failed", "", "out of memory"],
    ]
    assert max(len(line) for line in table.splitlines()) <= render.LIST_WIDTH


def test_an_empty_list_says_so() -> None:
    assert render.list_table([]) == "no training jobs"


def test_json_is_the_views_dict_with_sorted_keys() -> None:
    doc = json.loads(render.job_json(FINISHED))
    assert doc == FINISHED.as_dict()
    assert list(doc) == sorted(doc)
    assert json.loads(render.jobs_json([FINISHED, FAILED])) == [
        FINISHED.as_dict(),
        FAILED.as_dict(),
    ]


# -- cnn train logs --------------------------------------------------------------------------


def test_logs_block_names_the_volume_directory_the_local_one_and_the_command(
    tmp_path: Path,
) -> None:
    job = JobView(id="job-3", status=JobStatus.RUNNING, tensorboard_dir="tensorboard/job-3")
    local = tmp_path / "data dir" / "tensorboard" / "job-3"
    local.mkdir(parents=True)
    block = render.logs_block(render.EventFiles(job, "tensorboard/job-3", local))
    assert block.splitlines() == [
        "job      job-3",
        "volume   tensorboard/job-3 (in the data volume)",
        f"here     {local}",
        f"view     tensorboard --logdir '{local}'",  # quoted: the path has a blank
        f"all jobs tensorboard --logdir '{local.parent}'",
        "compose  docker compose --profile tensorboard up -d tensorboard  (http://127.0.0.1:6006)",
    ]
    missing = render.EventFiles(job, "tensorboard/job-3", Path("/nowhere/tensorboard/job-3"))
    assert "/nowhere/tensorboard/job-3  (not there yet)" in render.logs_block(missing)


def test_a_queued_job_whose_spec_asks_for_event_files_is_told_where_they_will_be() -> None:
    queued = JobView(id="job-4", status=JobStatus.QUEUED, spec={"tensorboard": True})
    assert render.planned_tensorboard_dir(queued) == "tensorboard/job-4"
    assert render.planned_tensorboard_dir(JobView(id="j", status=JobStatus.QUEUED, spec={})) is None
    off = JobView(id="j", status=JobStatus.QUEUED, spec={"tensorboard": None})
    assert render.planned_tensorboard_dir(off) is None
    # once a worker took it, only the worker's word counts
    running = JobView(id="job-4", status=JobStatus.RUNNING, spec={"tensorboard": True})
    assert render.planned_tensorboard_dir(running) is None
    block = render.logs_block(render.EventFiles(queued, "tensorboard/job-4", Path("/x")))
    assert "no worker has started the job yet" in block.splitlines()[1]


def test_status_shows_the_event_file_directory_when_the_job_writes_one() -> None:
    job = JobView(id="job-5", status=JobStatus.RUNNING, tensorboard_dir="tensorboard/job-5")
    assert "events   tensorboard/job-5 in the data volume (cnn train logs job-5)" in (
        render.status_block(job).splitlines()
    )
    assert "events" not in render.status_block(FAILED)
