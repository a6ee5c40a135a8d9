"""`cnn train` prints the same thing over Redis and over the gRPC server (issue #12).

Every command runs both ways against the same stack (redis-server, one worker, the server);
outputs and exit statuses are compared whole. Where the two runs show different jobs (two
cancelled jobs, two submissions) ids and times are normalised first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnn_cli.stack import LocalStack
from tests.cli.conftest import LONG_JOB_MAX_EPOCHS, run_cnn, spec, write_spec

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
TIME_FIELDS = ("enqueued_at", "started_at", "ended_at")


@dataclass(frozen=True)
class Run:
    """One command's exit status and output."""

    code: int
    out: str
    err: str


def both(stack: LocalStack, *args: str) -> tuple[Run, Run]:
    """Run `cnn ARGS` over Redis, then over gRPC."""
    runs = []
    for transport in (("--redis-url", stack.redis_url), ("--address", stack.grpc_address)):
        done = run_cnn(*args, *transport)
        runs.append(Run(done.returncode, done.stdout, done.stderr))
    return runs[0], runs[1]


def normalised(text: str) -> str:
    """Ids and local times replaced by placeholders (table padding follows their width)."""
    return LOCAL_TIME.sub("<time>", UUID.sub("<id>", text))


def normalised_json(doc: Any) -> Any:
    if isinstance(doc, list):
        return [normalised_json(item) for item in doc]
    return {
        key: ("<id>" if key == "id" else "<time>" if key in TIME_FIELDS and value else value)
        for key, value in doc.items()
    }


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def status_of(stack: LocalStack, job_id: str) -> str:
    done = run_cnn("train", "status", job_id, "--json", "--redis-url", stack.redis_url)
    return str(json.loads(done.stdout)["status"])


def wait_for_status(stack: LocalStack, job_id: str, wanted: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (current := status_of(stack, job_id)) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} still {current}, not {wanted}"
        time.sleep(0.3)


# -- a finished job ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job trained to its end (submitted over Redis)."""
    path = write_spec(tmp_path_factory.mktemp("agree"), spec("agree-finished", epochs=2))
    done = run_cnn("train", "submit", str(path), "--redis-url", stack.redis_url)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    wait_for_status(stack, job_id, "finished")
    return job_id


def test_submit_prints_only_the_job_id_either_way(stack: LocalStack, tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec("agree-submitted", epochs=1))
    over_redis, over_grpc = both(stack, "train", "submit", str(path))
    assert (over_redis.code, over_grpc.code) == (0, 0)
    assert UUID.fullmatch(over_redis.out.strip()) and UUID.fullmatch(over_grpc.out.strip())
    for run in (over_redis, over_grpc):
        wait_for_status(stack, run.out.strip(), "finished")


def test_status_of_a_finished_job_is_the_same(stack: LocalStack, finished: str) -> None:
    over_redis, over_grpc = both(stack, "train", "status", finished)
    assert over_redis == over_grpc
    assert over_redis.code == 0 and "status   finished" in over_redis.out
    over_redis, over_grpc = both(stack, "train", "status", finished, "--json")
    assert over_redis == over_grpc
    assert json.loads(over_redis.out)["model_version"] >= 1


def test_watch_json_of_a_finished_job_replays_the_same_epochs(
    stack: LocalStack, finished: str
) -> None:
    over_redis, over_grpc = both(stack, "train", "watch", finished, "--json")
    assert over_redis == over_grpc
    lines = [json.loads(line) for line in over_redis.out.splitlines()]
    assert [line["progress"]["epoch"] for line in lines[:-1]] == [1, 2]
    assert lines[-1]["status"] == "finished" and over_redis.code == 0


def test_watch_of_a_finished_job_ends_with_the_same_outcome(
    stack: LocalStack, finished: str
) -> None:
    over_redis, over_grpc = both(stack, "train", "watch", finished)
    assert over_redis.code == over_grpc.code == 0
    assert over_redis.out == over_grpc.out == ""
    assert last_line(over_redis.err) == last_line(over_grpc.err)
    assert last_line(over_redis.err).startswith("finished: agree-finished version ")


def test_list_is_the_same_table_and_the_same_json(stack: LocalStack, finished: str) -> None:
    for args in (("--status", "finished"), ("--status", "finished", "--json")):
        over_redis, over_grpc = both(stack, "train", "list", "--limit", "3", *args)
        assert over_redis == over_grpc
        assert finished in over_redis.out


def test_logs_of_a_job_with_event_files_are_the_same(stack: LocalStack, tmp_path: Path) -> None:
    # Training.Get carries the directory (Job.tensorboard_dir) as the Redis record does
    path = write_spec(tmp_path, spec("agree-tensorboard", epochs=1, tensorboard=True))
    job_id = run_cnn("train", "submit", str(path), "--redis-url", stack.redis_url).stdout.strip()
    wait_for_status(stack, job_id, "finished")
    for args in ((), ("--json",)):
        over_redis, over_grpc = both(stack, "train", "logs", job_id, *args)
        assert over_redis == over_grpc
        assert over_redis.code == 0 and f"tensorboard/{job_id}" in over_redis.out
    over_redis, over_grpc = both(stack, "train", "status", job_id)
    assert over_redis == over_grpc
    assert f"events   tensorboard/{job_id} in the data volume" in over_redis.out


def test_logs_of_a_job_without_event_files_is_the_same_error(
    stack: LocalStack, finished: str
) -> None:
    over_redis, over_grpc = both(stack, "train", "logs", finished)
    assert over_redis == over_grpc
    assert over_redis.code == 2 and "writes no TensorBoard event files" in over_redis.err


# -- cancelled jobs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_worker(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A long job the only worker is running, so jobs submitted now stay queued."""
    path = write_spec(tmp_path_factory.mktemp("long"), spec("agree-long", epochs=3000))
    job_id = run_cnn(
        "train",
        "submit",
        str(path),
        "--redis-url",
        stack.redis_url,
        env={"CNN_MAX_EPOCHS": LONG_JOB_MAX_EPOCHS},
    ).stdout.strip()
    wait_for_status(stack, job_id, "running")
    yield job_id
    if status_of(stack, job_id) != "cancelled":
        run_cnn("train", "cancel", job_id, "--redis-url", stack.redis_url)


def test_cancelling_queued_jobs_then_showing_them_reads_the_same(
    stack: LocalStack, busy_worker: str, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, spec("agree-queued"))
    ids = [
        run_cnn("train", "submit", str(path), "--redis-url", stack.redis_url).stdout.strip()
        for _ in range(2)
    ]
    by_redis = run_cnn("train", "cancel", ids[0], "--redis-url", stack.redis_url)
    by_grpc = run_cnn("train", "cancel", ids[1], "--address", stack.grpc_address)
    assert (by_redis.returncode, by_redis.stdout) == (by_grpc.returncode, by_grpc.stdout)
    assert by_redis.stdout.strip() == "cancelled"

    status_redis = run_cnn("train", "status", ids[0], "--redis-url", stack.redis_url)
    status_grpc = run_cnn("train", "status", ids[1], "--address", stack.grpc_address)
    assert normalised(status_redis.stdout) == normalised(status_grpc.stdout)
    json_redis = run_cnn("train", "status", ids[0], "--json", "--redis-url", stack.redis_url)
    json_grpc = run_cnn("train", "status", ids[1], "--json", "--address", stack.grpc_address)
    assert normalised_json(json.loads(json_redis.stdout)) == normalised_json(
        json.loads(json_grpc.stdout)
    )

    over_redis, over_grpc = both(stack, "train", "watch", ids[0])
    assert over_redis.code == over_grpc.code == 1
    assert last_line(over_redis.err) == last_line(over_grpc.err)
    assert last_line(over_redis.err).startswith("cancelled")


def test_cancelling_a_running_job_then_again_reads_the_same(
    stack: LocalStack, busy_worker: str
) -> None:
    done = run_cnn("train", "cancel", busy_worker, "--address", stack.grpc_address)
    assert (done.returncode, done.stdout.strip()) == (0, "cancelled")
    over_redis, over_grpc = both(stack, "train", "cancel", busy_worker)
    assert over_redis == over_grpc
    assert over_redis.code == 2
    assert over_redis.err.strip() == f"cnn: job {busy_worker} already ended with status cancelled"


# -- errors ------------------------------------------------------------------------------------


def test_an_unknown_job_is_the_same_one_line_error(stack: LocalStack) -> None:
    for command in ("status", "cancel", "watch"):
        over_redis, over_grpc = both(stack, "train", command, "no-such-job")
        assert over_redis == over_grpc, command
        assert over_redis.code == 2 and "'no-such-job' not found" in over_redis.err


def test_an_invalid_spec_is_the_same_one_line_error(stack: LocalStack, tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec("agree-bad", epochs=0, colour="blue"))
    over_redis, over_grpc = both(stack, "train", "submit", str(path))
    assert over_redis == over_grpc
    assert over_redis.code == 2
    assert over_redis.err.startswith("cnn: invalid training spec: ")
    assert "colour: unknown field" in over_redis.err and "epochs" in over_redis.err
