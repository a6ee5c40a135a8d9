"""The training API (cnn.v1.Training) against real processes: redis-server, an RQ worker
(`python -m worker`) and the server (`python -m server`).

Also: Redis going away makes training calls UNAVAILABLE (fast, naming Redis) while
classification keeps working, and training recovers when Redis is back.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from cnn_cli.redis_server import RedisServer
from cnn_client import CnnClient, CnnClientError
from core.artifacts import image_input, load_artifact
from core.datastore import DataStore
from core.images import open_image
from jobs.errors import (
    InvalidRequestId,
    InvalidSpec,
    JobAlreadyEnded,
    JobNotFound,
    QueueUnavailable,
    RequestIdReused,
)
from jobs.status import JobStatus
from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server import training_codec as codec
from server.errors import InvalidInput, ServerError
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import COLD_START_LIMIT_S
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, free_port
from tests.support.published import publish_untrained
from tests.support.stored_datasets import shapes_archive, store_archive, store_npz
from tests.support.training import training_spec
from tests.support.workers import launch_worker, wait_listening

EPOCHS = 3
#: Epochs of a job that must still be running when the test cancels it (~1 min).
LONG_EPOCHS = 3000


def tiny_spec(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A small CNN on digits: an epoch takes tens of milliseconds, far less than Watch's
    polling interval (0.2 s), which must still send one message per epoch."""
    architecture = [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    return training_spec(name, {"name": "digits"}, architecture, **{"epochs": EPOCHS, **overrides})


@dataclass
class Stack:
    redis: RedisServer
    server: ServerProcess
    worker: ManagedProcess
    data: Path  # CNN_DATA_DIR of the server and the worker

    def stub(self) -> pb_grpc.TrainingStub:
        return pb_grpc.TrainingStub(self.server.channel())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """redis-server + one worker + a server sharing one model repository."""
    root = tmp_path_factory.mktemp("training-api")
    models = root / "models"
    models.mkdir()
    redis_server = RedisServer(root / "redis").start()
    env = {
        "CNN_REDIS_URL": redis_server.url,
        "CNN_MODELS_DIR": str(models),
        "CNN_DATA_DIR": str(root / "data"),
        "CNN_PROGRESS_INTERVAL": "0.2",
        "CNN_MAX_WATCHES": "3",
        "CNN_MAX_EPOCHS": str(LONG_EPOCHS),
        "CNN_SUBMIT_RATE_PER_MIN": "0",  # the module submits more than a burst from one host
        "PYTHONUNBUFFERED": "1",
    }
    worker = launch_worker(env, root / "worker.log")  # it warms up while the server starts
    try:
        server = start_server(root / "server", models, env)
        try:
            wait_listening(worker)
            yield Stack(redis_server, server, worker, root / "data")
        finally:
            server.stop()
    finally:
        worker.stop()
        redis_server.stop()


def _submit(stub: pb_grpc.TrainingStub, spec: dict[str, Any]) -> str:
    return stub.Submit(pb.SubmitRequest(spec_json=json.dumps(spec)), timeout=10).job_id


def _status(stub: pb_grpc.TrainingStub, job_id: str) -> int:
    return stub.Get(pb.GetJobRequest(job_id=job_id), timeout=10).status


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


# -- validation and lookups --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_json", "needle"),
    [
        (json.dumps(tiny_spec(epochs=0)), "epochs"),
        (json.dumps(tiny_spec(bogus=1)), "bogus: unknown field"),
        (
            json.dumps(tiny_spec(architecture=[{"type": "conv3d", "filters": 2}])),
            "architecture.0.type",
        ),
        ('{"name": ', "not valid JSON"),
        ("", "spec_json is empty"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_invalid_spec_is_invalid_argument_naming_the_field(
    stack: Stack, spec_json: str, needle: str
) -> None:
    before = stack.redis.client().keys("rq:job:*")
    code, details = _code(lambda: stack.stub().Submit(pb.SubmitRequest(spec_json=spec_json)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in details
    assert stack.redis.client().keys("rq:job:*") == before  # nothing was enqueued


@pytest.mark.parametrize("method", ["Get", "Cancel"])
def test_unknown_job_is_not_found(stack: Stack, method: str) -> None:
    stub = stack.stub()
    request = pb.GetJobRequest(job_id="no-such-job")
    if method == "Cancel":
        request = pb.CancelRequest(job_id="no-such-job")
    code, details = _code(lambda: getattr(stub, method)(request, timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "no-such-job" in details


def test_unknown_job_watch_is_not_found(stack: Stack) -> None:
    stream = stack.stub().Watch(pb.WatchRequest(job_id="no-such-job"), timeout=10)
    code, _ = _code(lambda: list(stream))
    assert code == grpc.StatusCode.NOT_FOUND


def test_missing_or_malformed_job_id_is_invalid_argument(stack: Stack) -> None:
    stub = stack.stub()
    code, details = _code(lambda: stub.Get(pb.GetJobRequest(job_id=""), timeout=10))
    assert (code, "job_id is required" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)
    code, details = _code(lambda: stub.Get(pb.GetJobRequest(job_id="a b/c"), timeout=10))
    assert (code, "malformed" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)


# -- a job from submit to the published version ------------------------------------------------


@pytest.fixture(scope="module")
def finished(stack: Stack) -> tuple[str, list[pb.Job]]:
    """One job submitted over gRPC and watched to its end: (job id, every Watch message)."""
    stub = stack.stub()
    job_id = _submit(stub, tiny_spec("watched"))
    messages = list(stub.Watch(pb.WatchRequest(job_id=job_id), timeout=COLD_START_LIMIT_S))
    return job_id, messages


def test_watch_streams_one_message_per_epoch_and_ends_with_the_final_status(
    finished: tuple[str, list[pb.Job]],
) -> None:
    job_id, messages = finished
    assert all(m.job_id == job_id for m in messages)
    epoch_ends = [
        m.progress.epoch
        for m in messages
        if m.status == pb.JOB_STATUS_RUNNING and m.progress.phase == "evaluating"
    ]
    assert epoch_ends == list(range(1, EPOCHS + 1))  # each once, in order
    assert len(messages) >= EPOCHS + 1
    final = messages[-1]
    assert final.status == pb.JOB_STATUS_FINISHED
    assert [m.status for m in messages[:-1]].count(pb.JOB_STATUS_FINISHED) == 0
    assert final.model_name == "watched" and final.model_version == 1
    assert 0.5 < final.metrics["test_accuracy"] <= 1.0
    assert final.progress.epoch == final.progress.epochs == EPOCHS
    assert final.progress.step == final.progress.total_steps
    assert 0 < final.enqueued_at <= final.started_at <= final.ended_at
    submitted = json.loads(final.spec_json)  # the validated spec, defaults filled in
    assert submitted["name"] == "watched"
    assert submitted["architecture"] == tiny_spec()["architecture"]
    # one message per change: no two consecutive messages are identical
    assert all(a != b for a, b in itertools.pairwise(messages))


def test_get_and_list_report_the_finished_job(
    stack: Stack, finished: tuple[str, list[pb.Job]]
) -> None:
    job_id, messages = finished
    stub = stack.stub()
    job = stub.Get(pb.GetJobRequest(job_id=job_id), timeout=10)
    # Get carries the finished epochs; the watch sent each as a message of its own instead.
    assert [epoch.epoch for epoch in job.epochs] == list(range(1, EPOCHS + 1))
    assert all(epoch.updated_at > 0 and not epoch.phase for epoch in job.epochs)
    without_epochs = pb.Job()
    without_epochs.CopyFrom(job)
    without_epochs.ClearField("epochs")
    assert without_epochs == messages[-1]
    assert job.queue == "training" and job.stage == "finished" and job.attempts == 1
    listed = stub.List(pb.ListJobsRequest(), timeout=10).jobs
    assert job_id in [j.job_id for j in listed]
    only_finished = stub.List(pb.ListJobsRequest(status=pb.JOB_STATUS_FINISHED), timeout=10).jobs
    assert job_id in [j.job_id for j in only_finished]
    assert {j.status for j in only_finished} == {pb.JOB_STATUS_FINISHED}
    none_failed = stub.List(pb.ListJobsRequest(status=pb.JOB_STATUS_FAILED), timeout=10).jobs
    assert job_id not in [j.job_id for j in none_failed]


def test_watch_of_a_finished_job_sends_its_epochs_then_its_final_state_once(
    stack: Stack, finished: tuple[str, list[pb.Job]]
) -> None:
    job_id, messages = finished
    again = list(stack.stub().Watch(pb.WatchRequest(job_id=job_id), timeout=10))
    assert [m.progress.epoch for m in again[:-1]] == list(range(1, EPOCHS + 1))
    assert {m.status for m in again[:-1]} == {pb.JOB_STATUS_RUNNING}
    assert again[-1] == messages[-1]


def test_cancelling_a_finished_job_is_failed_precondition(
    stack: Stack, finished: tuple[str, list[pb.Job]]
) -> None:
    job_id, _ = finished
    code, details = _code(lambda: stack.stub().Cancel(pb.CancelRequest(job_id=job_id), timeout=10))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "finished" in details


def test_the_client_library_trains_and_classifies(
    stack: Stack, finished: tuple[str, list[pb.Job]]
) -> None:
    job_id, _ = finished
    with CnnClient(stack.server.address, timeout=10) as client:
        job = client.get_job(job_id)
        assert (job.status, job.terminal, job.model_version) == (JobStatus.FINISHED, True, 1)
        assert job.progress is not None and job.progress.phase in ("evaluating", "publishing")
        assert client.list_jobs(status=JobStatus.FINISHED)[0].id == job_id
        wait_for(lambda: "watched" in client.list_models(), 30, what="the model to load")
        info = client.get_model("watched")
        assert info.layers[0].receptive_field == (3, 3)
        assert info.layers[-1].receptive_field is None  # dense: the whole input
        result = client.classify_batch(
            _digits_test_images(), model="watched", version=job.model_version
        )
        assert len(result.results) == 4


def _digits_test_images() -> Any:
    from core.datasets import load_dataset

    data = load_dataset({"name": "digits"})
    assert data.x_test is not None
    return data.x_test[:4]


# -- uploaded data sets ------------------------------------------------------------------------


def _shapes_spec(name: str, dataset: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    arch = tiny_spec()["architecture"]
    arch[-1] = {"type": "dense", "units": 3}
    return tiny_spec(
        name,
        dataset=dataset,
        architecture=arch,
        input={"height": 12, "width": 12, "resize": "crop"},
        epochs=1,
        validation_split=0.0,
        **overrides,
    )


def test_an_unknown_data_set_is_invalid_argument_naming_it_and_the_stored_ones(
    stack: Stack,
) -> None:
    store_npz(DataStore(stack.data), "known", np.zeros((4, 6, 6), np.uint8), np.array([0, 1, 0, 1]))
    before = stack.redis.client().keys("rq:job:*")
    spec = json.dumps(_shapes_spec("nowhere", {"name": "unknown-set", "version": 2}))
    code, details = _code(lambda: stack.stub().Submit(pb.SubmitRequest(spec_json=spec)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dataset: data set 'unknown-set:2' not found; stored: known (versions 1)" in details
    assert stack.redis.client().keys("rq:job:*") == before


def test_a_warm_start_is_checked_and_pinned_against_the_served_repository(
    stack: Stack,
) -> None:
    """Submit reads the server's model repository: an unknown source is INVALID_ARGUMENT naming
    init_from.model; a known one is pinned to its newest version and fine-tuned by the worker."""
    stub = stack.stub()
    spec = tiny_spec("tuned", epochs=1, init_from={"model": "ft-source", "freeze": [0]})
    code, details = _code(lambda: _submit(stub, spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "init_from.model: no published model 'ft-source'" in details
    architecture = tiny_spec()["architecture"]
    publish_untrained(stack.data.parent / "models", "ft-source", architecture)
    job_id = _submit(stub, spec)
    final = list(stub.Watch(pb.WatchRequest(job_id=job_id), timeout=COLD_START_LIMIT_S))[-1]
    assert final.status == pb.JOB_STATUS_FINISHED, final.error
    assert json.loads(final.spec_json)["init_from"]["version"] == 1
    tuned = load_artifact(stack.data.parent / "models" / "tuned" / str(final.model_version))
    assert tuned.meta.init_from is not None
    assert (tuned.meta.init_from["version"], tuned.meta.init_from["frozen"]) == (1, [0])


def test_a_stored_archive_trains_and_the_server_answers_as_core_does(stack: Stack) -> None:
    """Submit names the set by name; the job is pinned to its id, trained by the worker on
    colour and grey PNG/JPEG images of mixed sizes, published, served; a held-out image's
    bytes classified by the server get core's answer for the same bytes."""
    files = shapes_archive([(12, 16), (20, 10), (15, 15), (9, 14), (24, 18)])
    stored = store_archive(DataStore(stack.data), "shapes", files)
    stub = stack.stub()
    job_id = _submit(stub, _shapes_spec("shapes-model", {"name": "shapes"}))
    final = list(stub.Watch(pb.WatchRequest(job_id=job_id), timeout=COLD_START_LIMIT_S))[-1]
    assert final.status == pb.JOB_STATUS_FINISHED, final.error
    pinned = {"name": "shapes", "version": 1, "id": f"sha256:{stored.digest}"}
    assert json.loads(final.spec_json)["dataset"] == pinned
    assert json.loads(final.spec_json)["input"] == {
        "channels": 3,
        "height": 12,
        "width": 12,
        "resize": "crop",
    }
    loaded = load_artifact(stack.server.models_dir / "shapes-model" / str(final.model_version))
    assert loaded.meta.dataset == pinned

    images = [files["bar/4.png"], files["disc/3.jpg"], files["square/2.png"]]
    local = loaded.predict_proba(
        np.stack([image_input(open_image(data), loaded.meta.input) for data in images])
    )
    with CnnClient(stack.server.address, timeout=10) as client:
        wait_for(lambda: "shapes-model" in client.list_models(), 30, what="the model to load")
        served = client.classify(images, model="shapes-model", top_k=3)
    for probabilities, answer in zip(local, served.results, strict=True):
        assert answer.class_indices == np.argsort(-probabilities, kind="stable").tolist()
        assert np.allclose(answer.probabilities, probabilities[answer.class_indices], atol=1e-6)


# -- cancel, watch limits, client disconnects --------------------------------------------------


def test_cancel_queued_and_running_jobs(stack: Stack) -> None:
    """One worker: a long job runs while the next waits; both are cancelled."""
    stub = stack.stub()
    running = _submit(stub, tiny_spec("long", epochs=LONG_EPOCHS))
    queued = _submit(stub, tiny_spec("waiting"))

    def status(job_id: str) -> int:
        return _status(stub, job_id)

    wait_for(lambda: status(running) == pb.JOB_STATUS_RUNNING, 60, what="the long job to run")
    assert status(queued) == pb.JOB_STATUS_QUEUED
    reply = stub.Cancel(pb.CancelRequest(job_id=queued), timeout=10)
    assert reply.status == pb.JOB_STATUS_CANCELLED

    watched: list[pb.Job] = []
    watcher = threading.Thread(
        target=lambda: watched.extend(stub.Watch(pb.WatchRequest(job_id=running), timeout=60)),
    )
    watcher.start()
    reply = stub.Cancel(pb.CancelRequest(job_id=running), timeout=40)
    assert reply.status == pb.JOB_STATUS_CANCELLED
    watcher.join(30)
    assert not watcher.is_alive()
    assert watched[-1].status == pb.JOB_STATUS_CANCELLED
    assert status(running) == status(queued) == pb.JOB_STATUS_CANCELLED


def test_watches_beyond_the_limit_are_refused_and_cancelled_ones_free_their_slot(
    stack: Stack,
) -> None:
    stub = stack.stub()
    long_job = _submit(stub, tiny_spec("occupied", epochs=LONG_EPOCHS))
    try:
        streams = [stub.Watch(pb.WatchRequest(job_id=long_job), timeout=60) for _ in range(3)]
        for stream in streams:
            next(stream)  # each stream holds a slot once its first message arrived
        code, details = _code(
            lambda: next(stub.Watch(pb.WatchRequest(job_id=long_job), timeout=10))
        )
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "CNN_MAX_WATCHES" in details
        streams[0].cancel()

        def slot_free() -> bool:
            try:
                stream = stub.Watch(pb.WatchRequest(job_id=long_job), timeout=10)
                next(stream)
                stream.cancel()
                return True
            except grpc.RpcError:
                return False

        wait_for(slot_free, 5, interval=0.2, what="the cancelled watch to free its slot")
        for stream in streams[1:]:
            stream.cancel()
    finally:
        # Cancel it once it runs: a job cancelled just as the worker dequeues it may still run.
        wait_for(lambda: _status(stub, long_job) != pb.JOB_STATUS_QUEUED, 60, what="the job")
        reply = stub.Cancel(pb.CancelRequest(job_id=long_job), timeout=40)
        assert reply.status == pb.JOB_STATUS_CANCELLED


# -- Redis down --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_and_server(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[tuple[RedisServer, ServerProcess]]:
    """A server serving `digits` whose job queue is a Redis the test may stop."""
    root = tmp_path_factory.mktemp("redis-down")
    publish_copy(root / "models", "digits", digits_artifact.path)
    redis_server = RedisServer(root / "redis").start()
    server = start_server(root / "server", root / "models", {"CNN_REDIS_URL": redis_server.url})
    try:
        yield redis_server, server
    finally:
        server.stop()
        redis_server.stop()


def test_redis_down_training_is_unavailable_fast_and_classification_works(
    redis_and_server: tuple[RedisServer, ServerProcess], digits_artifact: TrainedArtifact
) -> None:
    redis_server, server = redis_and_server
    with CnnClient(server.address, timeout=10) as client:
        assert client.list_jobs() == []
        redis_server.stop()
        try:
            calls = {
                "submit": lambda: client.submit(tiny_spec()),
                "get": lambda: client.get_job("some-job"),
                "cancel": lambda: client.cancel("some-job"),
                "list": lambda: client.list_jobs(),
                "watch": lambda: list(client.watch("some-job", timeout=10)),
            }
            for name, call in calls.items():
                with pytest.raises(CnnClientError) as info:
                    call()
                assert info.value.code == grpc.StatusCode.UNAVAILABLE, name
                assert f"job queue (Redis at {redis_server.url}) unreachable" in str(info.value)
            # Fast, by construction: the server already retried, so its UNAVAILABLE tells gRPC
            # clients with a retry policy not to retry (speed itself is not asserted here).
            with server.channel() as channel, pytest.raises(grpc.RpcError) as raw:
                pb_grpc.TrainingStub(channel).List(pb.ListJobsRequest(), timeout=60)
            assert raw.value.code() == grpc.StatusCode.UNAVAILABLE
            assert ("grpc-retry-pushback-ms", "-1") in tuple(raw.value.trailing_metadata())
            result = client.classify_batch(digits_artifact.data.x_test[:3], model="digits")
            assert len(result.results) == 3
        finally:
            redis_server.start()  # same port
        assert client.list_jobs() == []  # training works again without a server restart


def test_server_starts_and_classifies_when_redis_was_never_there(
    tmp_path: Path, digits_artifact: TrainedArtifact
) -> None:
    publish_copy(tmp_path / "models", "digits", digits_artifact.path)
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = start_server(tmp_path / "server", tmp_path / "models", {"CNN_REDIS_URL": url})
    try:
        with CnnClient(server.address, timeout=10) as client:
            assert (
                len(client.classify_batch(digits_artifact.data.x_test[:1], model="digits").results)
                == 1
            )
            with pytest.raises(CnnClientError) as info:
                client.submit(tiny_spec())
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert url in str(info.value)
    finally:
        server.stop()


def test_the_client_watch_rides_out_a_server_restart(tmp_path: Path) -> None:
    """No worker: the job stays queued while the server restarts on the same port; the watch
    reopens its stream and ends with the cancel made through the new server."""
    (tmp_path / "models").mkdir()
    redis_server = RedisServer(tmp_path / "redis").start()
    env = {"CNN_REDIS_URL": redis_server.url, "CNN_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"}
    server = start_server(tmp_path / "first", tmp_path / "models", env)
    try:
        with CnnClient(server.address, timeout=10) as client:
            job_id = client.submit(tiny_spec("restart"))
            views = client.watch(job_id, timeout=120)
            assert next(views).status is JobStatus.QUEUED
            server.stop()
            server = start_server(tmp_path / "second", tmp_path / "models", env)
            with CnnClient(server.address, timeout=10) as other:
                assert other.cancel(job_id) is JobStatus.CANCELLED
            assert [view.status for view in views] == [JobStatus.CANCELLED]
    finally:
        server.stop()
        redis_server.stop()


# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "needle"), [("", "job_id is required"), ("a b/c", "malformed"), ("x" * 129, "1-128")]
)
def test_a_missing_or_malformed_job_id_is_invalid_input(value: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        codec.job_id(value)


def test_spec_json_is_checked_for_presence_and_size_before_the_queue_sees_it() -> None:
    assert codec.spec_json('{"name": "m"}') == '{"name": "m"}'
    with pytest.raises(InvalidInput, match="spec_json is empty"):
        codec.spec_json("  ")
    with pytest.raises(InvalidInput, match="limit is 1048576 bytes"):
        codec.spec_json('"' + "x" * codec.MAX_SPEC_BYTES + '"')


def test_list_query_defaults_and_caps_the_limit_and_decodes_the_status() -> None:
    assert codec.list_query(pb.ListJobsRequest()) == (None, codec.DEFAULT_LIST_LIMIT)
    wanted = pb.ListJobsRequest(status=pb.JOB_STATUS_FAILED, limit=10**6)
    assert codec.list_query(wanted) == (JobStatus.FAILED, codec.MAX_LIST_LIMIT)
    with pytest.raises(InvalidInput, match="status 42"):
        codec.list_query(pb.ListJobsRequest(status=42))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (JobNotFound("j"), grpc.StatusCode.NOT_FOUND, "job 'j' not found"),
        (
            JobAlreadyEnded("j", JobStatus.FINISHED),
            grpc.StatusCode.FAILED_PRECONDITION,
            "job j already ended with status finished",
        ),
        (
            InvalidSpec(["epochs: too small", "colour: unknown field"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid training spec: epochs: too small; colour: unknown field",
        ),
        (
            RequestIdReused("k1", "j", "2026-12-01T00:00:00+00:00"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "request_id 'k1' was used at 2026-12-01T00:00:00+00:00 to queue job j with a "
            "different spec",
        ),
        (
            InvalidRequestId("request_id 'a b' is malformed"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "request_id 'a b' is malformed",
        ),
        (
            QueueUnavailable("Redis at redis://h:1/0 unreachable"),
            grpc.StatusCode.UNAVAILABLE,
            "Redis at redis://h:1/0 unreachable (training calls fail until it is back; "
            "classification is unaffected)",
        ),
    ],
)
def test_queue_errors_keep_their_words_and_get_their_grpc_status(
    error: Exception, code: grpc.StatusCode, text: str
) -> None:
    with pytest.raises(ServerError) as raised, codec.queue_errors():
        raise error
    assert raised.value.code == code
    assert str(raised.value).startswith(text)
