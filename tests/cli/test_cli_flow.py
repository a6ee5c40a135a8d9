"""A user trains a model and uses it with the `cnn` command only: submit, watch, status,
classify, models, inspect; over the gRPC server, with Redis-mode commands for comparison
(`test_transports_agree` compares every command)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnn_cli.stack import LocalStack
from core.artifacts import CONFUSION_MATRIX_PNG, EVALUATION_JSON, read_evaluation
from tests.cli.conftest import run_cnn, spec, write_spec
from tests.support.limits import COLD_START_LIMIT_S, EVENT_LIMIT_S

MODEL = "digits-cli"


@dataclass(frozen=True)
class Trained:
    job_id: str
    watch_lines: list[dict[str, Any]]
    watch_exit: int


def _wait_for_model(address: str, name: str, timeout: float = EVENT_LIMIT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = run_cnn("models", "list", "--json", "--address", address)
        if done.returncode == 0 and name in [m["name"] for m in json.loads(done.stdout)]:
            return
        assert time.monotonic() < deadline, f"{name} not loaded: {done.stdout}{done.stderr}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def trained(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`cnn train submit` then `cnn train watch --json`, both over gRPC; the model is loaded."""
    path = write_spec(tmp_path_factory.mktemp("specs"), spec(MODEL))
    submitted = run_cnn("train", "submit", str(path), "--address", stack.grpc_address)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = run_cnn("train", "watch", job_id, "--json", "--address", stack.grpc_address)
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    _wait_for_model(stack.grpc_address, MODEL)
    return Trained(job_id, lines, watched.returncode)


def test_submit_prints_only_the_job_id(trained: Trained) -> None:
    assert len(trained.job_id) == 36 and trained.job_id.count("-") == 4  # a UUID


def test_watch_streams_one_line_per_epoch_and_ends_with_the_final_status(
    trained: Trained,
) -> None:
    assert trained.watch_exit == 0
    epoch_ends = [
        line["progress"]["epoch"]
        for line in trained.watch_lines
        if line["status"] == "running" and (line["progress"] or {}).get("phase") == "evaluating"
    ]
    assert epoch_ends == [1, 2, 3]  # each once, in order
    final = trained.watch_lines[-1]
    assert (final["status"], final["model"], final["model_version"]) == (
        "finished",
        MODEL,
        1,
    )
    assert all(line["status"] != "finished" for line in trained.watch_lines[:-1])


def test_status_over_grpc_and_over_redis_tell_the_same_story(
    stack: LocalStack, trained: Trained
) -> None:
    over_grpc = run_cnn(
        "train", "status", trained.job_id, "--json", "--address", stack.grpc_address
    )
    over_redis = run_cnn(
        "train", "status", trained.job_id, "--json", "--redis-url", stack.redis_url
    )
    assert over_grpc.returncode == over_redis.returncode == 0
    assert over_grpc.stdout == over_redis.stdout  # the same view, whichever way it came
    job = json.loads(over_grpc.stdout)
    assert (job["status"], job["model_version"]) == ("finished", 1)
    text = run_cnn("train", "status", trained.job_id, "--address", stack.grpc_address).stdout
    assert "status   finished" in text and f"{MODEL} version 1" in text


def test_list_over_grpc_shows_the_job(stack: LocalStack, trained: Trained) -> None:
    done = run_cnn("train", "list", "--address", stack.grpc_address)
    assert done.returncode == 0
    assert trained.job_id in done.stdout and "finished" in done.stdout


def test_classify_prints_a_table_with_the_predicted_digits(
    stack: LocalStack, trained: Trained, digit_pngs: tuple[list[Path], list[int]]
) -> None:
    paths, labels = digit_pngs
    done = run_cnn("classify", *map(str, paths), "--model", MODEL, "--address", stack.grpc_address)
    assert done.returncode == 0, done.stderr
    assert f"{MODEL} version 1" in done.stdout
    rows = [line for line in done.stdout.splitlines() if ".png" in line]
    assert len(rows) == 4
    predicted = [row.split("│")[2].strip() for row in rows]
    assert sum(p == str(y) for p, y in zip(predicted, labels, strict=True)) >= 3


def test_classify_json_picks_the_only_model_and_honours_top_k(
    stack: LocalStack, trained: Trained, digit_pngs: tuple[list[Path], list[int]]
) -> None:
    paths, _ = digit_pngs
    done = run_cnn("classify", str(paths[0]), "--json", "-k", "2", "--address", stack.grpc_address)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["model"], doc["version"]) == (MODEL, 1)
    (result,) = doc["results"]
    assert result["image"] == str(paths[0])
    assert len(result["predictions"]) == 2
    probabilities = [p["probability"] for p in result["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_models_list_and_show_with_receptive_fields(stack: LocalStack, trained: Trained) -> None:
    listed = run_cnn("models", "list", "--address", stack.grpc_address)
    assert listed.returncode == 0 and MODEL in listed.stdout
    shown = run_cnn("models", "show", MODEL, "--address", stack.grpc_address)
    assert shown.returncode == 0, shown.stderr
    assert f"model     {MODEL} version 1" in shown.stdout
    assert "input     1×8×8, pixel range [0, 16], images resized by stretch" in shown.stdout
    assert "RF size" in shown.stdout and "global" in shown.stdout  # receptive-field columns
    doc = json.loads(
        run_cnn("models", "show", MODEL, "--json", "--address", stack.grpc_address).stdout
    )
    assert [layer["receptive_field"] for layer in doc["layers"][:3]] == [[3, 3], [3, 3], [5, 5]]
    assert doc["job_id"] == trained.job_id


def test_models_show_prints_the_evaluation_report_and_where_its_picture_is(
    stack: LocalStack, trained: Trained
) -> None:
    shown = run_cnn(
        "models", "show", f"{MODEL}:1", "--models-dir", str(stack.models_dir),
        "--address", stack.grpc_address,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    directory = stack.models_dir / MODEL / "1"
    stored = read_evaluation(directory)
    assert stored is not None
    assert f"evaluation  test split, {stored.samples:,} images: accuracy {stored.accuracy:.3f}" in (
        shown.stdout
    )
    assert f"macro precision {stored.macro_precision:.3f}" in shown.stdout
    assert f"picture     {(directory / CONFUSION_MATRIX_PNG).resolve()}" in lines
    table = lines.index("class  precision  recall     F1  support")
    assert [line.split()[0] for line in lines[table + 1 : table + 11]] == [
        str(i) for i in range(10)
    ]
    grid = lines.index("confusion matrix (rows: true class, columns: predicted class)")
    assert lines[grid + 1].split()[-10:] == [str(i) for i in range(10)]
    for i, row in enumerate(lines[grid + 2 : grid + 12]):
        assert [int(v) for v in row.split()[1:]] == stored.matrix()[i].tolist()  # 'i' counts
    doc = json.loads(
        run_cnn("models", "show", MODEL, "--json", "--address", stack.grpc_address).stdout
    )
    assert doc["evaluation"] == json.loads((directory / EVALUATION_JSON).read_text())


def test_inspect_by_model_name_writes_every_picture_and_the_page(
    stack: LocalStack, trained: Trained, digit_pngs: tuple[list[Path], list[int]], tmp_path: Path
) -> None:
    paths, _ = digit_pngs
    done = run_cnn(
        "inspect", MODEL, "--image", str(paths[0]), "--out", str(tmp_path / "pictures"),
        "--models-dir", str(stack.models_dir), timeout=COLD_START_LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    names = {p.name for p in written}
    # the trained model's data set is the bundled digits: nothing is missing, no notes
    for prefix in ("kernels_", "features_", "fields_", "top_patches_"):
        assert any(name.startswith(prefix) for name in names), prefix
    assert {"saliency.png", "learning_curve.png", "confusion_matrix.png", "index.html"} <= names
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written if p.suffix == ".png")
    assert written[-1].read_text().startswith("<!DOCTYPE html>")


def test_cancel_over_grpc_stops_a_running_job_and_watch_exits_non_zero(
    stack: LocalStack, trained: Trained, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, spec("digits-long", epochs=3000))
    job_id = run_cnn("train", "submit", str(path), "--address", stack.grpc_address).stdout.strip()
    deadline = time.monotonic() + EVENT_LIMIT_S
    while True:
        status = run_cnn("train", "status", job_id, "--json", "--address", stack.grpc_address)
        if json.loads(status.stdout)["status"] == "running":
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.3)
    cancelled = run_cnn("train", "cancel", job_id, "--address", stack.grpc_address)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, "cancelled")
    watched = run_cnn("train", "watch", job_id, "--address", stack.grpc_address)
    assert watched.returncode == 1
    assert "cancelled" in watched.stderr
    again = run_cnn("train", "cancel", job_id, "--address", stack.grpc_address)
    assert again.returncode == 2
    assert again.stderr.strip() == f"cnn: job {job_id} already ended with status cancelled"
