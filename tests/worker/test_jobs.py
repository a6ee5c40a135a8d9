"""Training jobs end to end: CLI submit/watch, version numbering, concurrent workers, rejection."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from core.artifacts import load_artifact
from core.repository import ModelRepository
from jobs.spec import parse_spec
from tests.support.polling import wait_for
from tests.worker.helpers import run_cli, tiny_spec, write_spec
from worker import client

pytestmark = pytest.mark.integration


def test_cli_submit_and_watch_publishes_version_1_then_version_2(
    start_worker, worker_env: dict[str, str], models_dir: Path, tmp_path: Path
) -> None:
    start_worker()
    spec = write_spec(tmp_path, tiny_spec("digits-cli"))

    submitted = run_cli(worker_env, "train", "submit", str(spec))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = run_cli(worker_env, "train", "watch", job_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "version 1" in watched.stdout + watched.stderr

    repo = ModelRepository(models_dir)
    assert repo.versions("digits-cli") == [1]
    loaded = load_artifact(repo.path("digits-cli", 1))
    assert loaded.meta.job_id == job_id

    second = run_cli(worker_env, "train", "submit", "--watch", str(spec))
    assert second.returncode == 0, second.stderr
    assert repo.versions("digits-cli") == [1, 2]
    assert not (models_dir / ".checkpoints" / job_id).exists()

    status = run_cli(worker_env, "train", "status", job_id)
    assert "finished" in status.stdout
    listing = run_cli(worker_env, "train", "list", "--json")
    assert job_id in listing.stdout


def test_two_workers_two_jobs_same_name_get_distinct_versions(
    start_worker, client_env: dict[str, str], models_dir: Path
) -> None:
    start_worker("a")
    start_worker("b")
    spec = tiny_spec("digits-race", epochs=2)
    ids = [client.submit(spec), client.submit(spec)]

    # Both must be running at the same time for the race to be real.
    wait_for(
        lambda: all(client.status(i).status == "started" for i in ids),
        timeout=60,
        what="both jobs started",
    )
    infos = [client.poll(i, timeout=180) for i in ids]

    assert [i.status for i in infos] == ["finished", "finished"]
    assert {i.worker["name"] for i in infos if i.worker} and len(
        {i.worker["name"] for i in infos if i.worker}
    ) == 2
    assert sorted(i.result["version"] for i in infos if i.result) == [1, 2]
    assert ModelRepository(models_dir).versions("digits-race") == [1, 2]


def test_a_finished_job_reports_each_epoch_and_the_submitted_spec(
    start_worker, client_env: dict[str, str]
) -> None:
    start_worker()
    spec = tiny_spec("digits-epochs", epochs=3)
    info = client.poll(client.submit(spec), timeout=120)
    assert info.status == "finished"
    assert [e["epoch"] for e in info.epochs] == [1, 2, 3]
    assert all(0.0 <= e["train_accuracy"] <= 1.0 and e["epochs"] == 3 for e in info.epochs)
    assert info.epochs[-1]["step"] == info.epochs[-1]["total_steps"]
    assert info.spec == parse_spec(spec).payload()  # the validated spec, defaults filled in


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"architecture": [{"type": "conv3d"}]}, "architecture.0.type"),
        ({"dataset": {"name": "imagenet"}}, "dataset.name"),
        ({"epochs": -2}, "epochs"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
    ids=["unknown-layer", "unknown-dataset", "negative-epochs", "extra-key"],
)
def test_invalid_spec_is_rejected_at_submit_and_nothing_is_enqueued(
    worker_env: dict[str, str], tmp_path: Path, redis_url: str, change: dict, field: str
) -> None:
    spec = write_spec(tmp_path, tiny_spec(**change))
    result = run_cli(worker_env, "train", "submit", str(spec))
    assert result.returncode == 2
    assert f"{field}: " in result.stderr
    assert result.stdout == ""
    connection = redis.Redis.from_url(redis_url)
    assert connection.keys("rq:*") == []


def test_status_of_unknown_job_is_a_one_line_error(worker_env: dict[str, str]) -> None:
    result = run_cli(worker_env, "train", "status", "no-such-job")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr
