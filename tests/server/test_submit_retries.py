"""`Training.Submit` with a request id against a real server and a real Redis: a retried or
doubled Submit queues one job, another spec under the same key is refused naming the field,
and the client and `cnn train submit` send a key of their own.

No worker runs: every job stays queued, so the queue holds exactly what was submitted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cnn_cli.redis_server import RedisServer
from cnn_client import CnnClient, TlsOptions
from jobs import rq_layout
from jobs.settings import QueueSettings
from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server import training_codec as codec
from tests.cli.conftest import run_cnn
from tests.server.serverproc import ServerProcess, start_server
from tests.server.test_training_api import tiny_spec
from tests.support.limits import EVENT_LIMIT_S
from tests.support.tls import self_signed


@dataclass
class Stack:
    redis: RedisServer
    server: ServerProcess

    def stub(self) -> pb_grpc.TrainingStub:
        return pb_grpc.TrainingStub(self.server.channel())

    def queued(self) -> list[str]:
        """Ids waiting on the queue, oldest first."""
        client = self.redis.client()
        try:
            key = rq_layout.queue_key(QueueSettings().queue)
            return [job_id.decode() for job_id in client.lrange(key, 0, -1)]
        finally:
            client.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("submit-retries")
    (root / "models").mkdir()
    redis_server = RedisServer(root / "redis").start()
    try:
        env = {
            "CNN_REDIS_URL": redis_server.url,
            "CNN_DATA_DIR": str(root / "data"),
            "CNN_SUBMIT_RATE_PER_MIN": "0",
        }
        server = start_server(root / "server", root / "models", env)
        try:
            yield Stack(redis_server, server)
        finally:
            server.stop()
    finally:
        redis_server.stop()


@pytest.fixture()
def clean(stack: Stack) -> Stack:
    """The stack with an empty Redis."""
    client = stack.redis.client()
    client.flushall()
    client.close()
    return stack


def _submit(stub: pb_grpc.TrainingStub, spec: dict, request_id: str) -> pb.SubmitResponse:  # type: ignore[type-arg]
    request = pb.SubmitRequest(spec_json=json.dumps(spec), request_id=request_id)
    return stub.Submit(request, timeout=EVENT_LIMIT_S)


def test_the_same_submit_sent_twice_queues_one_job(clean: Stack) -> None:
    stub = clean.stub()
    first = _submit(stub, tiny_spec("twice"), "7f9c-once")
    again = _submit(stub, tiny_spec("twice"), "7f9c-once")
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.job_id == first.job_id
    assert clean.queued() == [first.job_id]


def test_the_same_submit_from_two_threads_at_once_queues_one_job(clean: Stack) -> None:
    start = threading.Barrier(2)

    def submit(_: int) -> pb.SubmitResponse:
        stub = clean.stub()  # a channel per thread: two connections, as two replicas see
        start.wait()
        return _submit(stub, tiny_spec("raced"), "raced-key")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(submit, range(2)))
    assert answers[0].job_id == answers[1].job_id
    assert sorted(a.duplicate for a in answers) == [False, True]
    assert clean.queued() == [answers[0].job_id]


def test_another_spec_under_the_same_request_id_is_failed_precondition(clean: Stack) -> None:
    stub = clean.stub()
    job_id = _submit(stub, tiny_spec("first"), "reused").job_id
    with pytest.raises(grpc.RpcError) as refused:
        _submit(stub, tiny_spec("second"), "reused")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "request_id 'reused'" in refused.value.details()
    assert job_id in refused.value.details()
    assert clean.queued() == [job_id]


def test_a_malformed_request_id_is_invalid_argument_naming_it(clean: Stack) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        _submit(clean.stub(), tiny_spec(), "no spaces please")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in refused.value.details() and "1-128" in refused.value.details()
    assert clean.queued() == []


def test_the_client_sends_a_new_key_per_submit_or_the_callers_own(clean: Stack) -> None:
    with CnnClient(clean.server.address, timeout=EVENT_LIMIT_S) as client:
        one, two = client.submit(tiny_spec("a")), client.submit(tiny_spec("a"))
        assert one != two  # two logical submits of one spec are two jobs
        mine = client.submit(tiny_spec("b"), request_id="caller-key")
        assert client.submit(tiny_spec("b"), request_id="caller-key") == mine
    assert clean.queued() == [one, two, mine]


def test_cnn_train_submit_with_a_request_id_prints_the_first_job_again(
    clean: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec("cli")))
    address = ["--address", clean.server.address]
    runs = [
        run_cnn("train", "submit", str(path), "--request-id", "cli-key", *address) for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert clean.queued() == [runs[0].stdout.strip()]


def test_request_ids_belong_to_the_client_certificate_that_sent_them(
    tmp_path: Path, redis_url: str
) -> None:
    """With mutual TLS, two callers using one request id each get their own job."""
    dirs = {name: tmp_path / name for name in ("server", "svc-a", "svc-b")}
    for directory in dirs.values():
        directory.mkdir()
    server_key, server_cert = self_signed(dirs["server"])
    clients = {name: self_signed(dirs[name], name) for name in ("svc-a", "svc-b")}
    trusted = tmp_path / "client-ca.pem"
    trusted.write_bytes(b"".join(cert.read_bytes() for _, cert in clients.values()))
    (tmp_path / "models").mkdir()
    env = {
        "CNN_REDIS_URL": redis_url,
        "CNN_TLS_CERT": str(server_cert),
        "CNN_TLS_KEY": str(server_key),
        "CNN_TLS_CLIENT_CA": str(trusted),
    }
    server = start_server(tmp_path / "srv", tmp_path / "models", env)
    try:

        def submit(name: str) -> str:
            key, cert = clients[name]
            tls = TlsOptions(root_ca=server_cert, client_cert=cert, client_key=key)
            with CnnClient(server.address, tls=tls, timeout=EVENT_LIMIT_S) as client:
                return client.submit(tiny_spec("shared"), request_id="same-key")

        first_a, first_b = submit("svc-a"), submit("svc-b")
        assert first_a != first_b
        assert (submit("svc-a"), submit("svc-b")) == (first_a, first_b)
    finally:
        server.stop()


def test_the_submitter_is_the_authenticated_identity_not_the_address() -> None:
    assert codec.submitter(None) == codec.submitter([]) == ""  # no client certificates
    # The names of one certificate, in whatever order gRPC lists them.
    assert codec.submitter([b"svc-a", b"svc-a.example"]) == codec.submitter(
        [b"svc-a.example", b"svc-a"]
    )
    assert codec.submitter([b"svc-a"]) != codec.submitter([b"svc-b"])
    assert codec.request_id("") is None and codec.request_id("k") == "k"
