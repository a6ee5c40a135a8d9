"""Training.Submit is rate-limited per caller: a token bucket per client host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from server.rate_limit import RateLimiter, caller_of
from tests.server.serverproc import ServerProcess, start_server
from tests.support.redis_server import RedisServer


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_one_request_per_refill() -> None:
    clock = _Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)  # one token every 10 s
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(10.0)  # empty: the next token in 10 s
    clock.now += 5.0
    assert limiter.acquire("a") == pytest.approx(5.0)  # half a token so far
    clock.now += 5.0
    assert limiter.acquire("a") == 0.0


def test_callers_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=_Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_a_bucket_never_holds_more_than_the_burst() -> None:
    clock = _Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.acquire("a")
    clock.now += 3600.0  # an hour idle refills 3,600 tokens' worth, capped at 2
    assert [limiter.acquire("a") > 0 for _ in range(3)] == [False, False, True]


def test_only_so_many_callers_are_remembered() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, max_callers=2, clock=_Clock())
    for caller in ("a", "b", "c"):  # "a" is forgotten when "c" arrives
        limiter.acquire(caller)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("c") > 0


def test_zero_per_minute_is_no_limit() -> None:
    limiter = RateLimiter(per_minute=0, burst=1, clock=_Clock())
    assert all(limiter.acquire("a") == 0.0 for _ in range(100))


@pytest.mark.parametrize(
    ("peer", "caller"),
    [
        ("ipv4:10.0.0.7:51234", "ipv4:10.0.0.7"),
        ("ipv6:[::1]:51234", "ipv6:[::1]"),
        ("unix:/run/cnn.sock", "unix:/run/cnn.sock"),
    ],
)
def test_the_caller_is_the_peer_host_without_its_port(peer: str, caller: str) -> None:
    assert caller_of(peer) == caller


@pytest.fixture()
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        env = {
            "CNN_REDIS_URL": redis_server.url,
            "CNN_SUBMIT_RATE_PER_MIN": "0.001",  # no refill within the test
            "CNN_SUBMIT_BURST": "2",
        }
        server = start_server(tmp_path / "server", tmp_path / "models", env)
        try:
            yield server
        finally:
            server.stop()
    finally:
        redis_server.stop()


def test_submits_beyond_the_burst_are_refused_naming_the_limits(
    limited_server: ServerProcess,
) -> None:
    spec = {
        "name": "limited",
        "dataset": {"name": "digits"},
        "epochs": 1,
        "architecture": [{"type": "flatten"}, {"type": "dense", "units": 10}],
    }
    request = pb.SubmitRequest(spec_json=json.dumps(spec))
    with limited_server.channel() as channel:
        stub = pb_grpc.TrainingStub(channel)
        ids = [stub.Submit(request, timeout=60).job_id for _ in range(2)]
        with pytest.raises(grpc.RpcError) as info:
            stub.Submit(request, timeout=60)
    assert all(ids)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = info.value.details() or ""
    assert "CNN_SUBMIT_BURST" in details and "CNN_SUBMIT_RATE_PER_MIN" in details
