"""cnn_client across several server replicas: gRPC's round_robin policy and the retry policy,
against real server processes on 127.0.0.1.

One machine has one address per name, so the tests name two servers with an `ipv4:` target
(`ipv4:127.0.0.1:P1,127.0.0.1:P2`); gRPC resolves a `dns:///name:port` target with several A
records (a Kubernetes headless Service) into the same address list, balanced the same way.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from cnn_client import CnnClient, CnnClientError
from cnn_client.client import _service_config
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import EVENT_LIMIT_S
from tests.support.metrics import requests_handled
from tests.support.polling import wait_for
from tests.support.ports import free_port

X = (np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8)) % 17


class Replica:
    """A server process with its own metrics endpoint."""

    def __init__(self, server: ServerProcess, metrics_port: int) -> None:
        self.server = server
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def classified(self) -> int:
        return requests_handled(self.metrics_url)


@pytest.fixture
def replicas(tmp_path: Path, digits_artifact: TrainedArtifact) -> Iterator[list[Replica]]:
    """Two servers of the same model repository, each with its own counters."""
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    started: list[Replica] = []
    try:
        for index in range(2):
            server = start_server(tmp_path / f"server{index}", root, {"CNN_METRICS_PORT": "0"})
            match = server.process.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
            started.append(Replica(server, int(match.group(1))))
        yield started
    finally:
        for replica in started:
            replica.server.stop()


def _target(*hostports: str) -> str:
    return "ipv4:" + ",".join(hostports)


def _classify(client: CnnClient, calls: int) -> None:
    for _ in range(calls):
        assert client.classify_batch(X, model="digits").version == 1


def test_round_robin_sends_calls_to_every_replica(replicas: list[Replica]) -> None:
    a, b = replicas
    with CnnClient(_target(a.hostport, b.hostport), timeout=EVENT_LIMIT_S) as client:
        # Both connections come up in the background; once they have, calls alternate.
        def both_served() -> bool:
            _classify(client, 4)
            return a.classified() > 0 and b.classified() > 0

        wait_for(both_served, EVENT_LIMIT_S, what="calls on both replicas")
        before = (a.classified(), b.classified())
        _classify(client, 20)
    after = (a.classified(), b.classified())
    assert after[0] - before[0] == after[1] - before[1] == 10, (before, after)


def test_pick_first_keeps_to_one_replica(replicas: list[Replica]) -> None:
    """The control: the same calls with gRPC's default policy all go to one server."""
    a, b = replicas
    target = _target(a.hostport, b.hostport)
    with CnnClient(target, load_balancing="pick_first", timeout=EVENT_LIMIT_S) as client:
        _classify(client, 20)
    assert sorted((a.classified(), b.classified())) == [0, 20]


def test_an_address_nobody_answers_costs_no_call(replicas: list[Replica]) -> None:
    live = replicas[0]
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with CnnClient(_target(dead, live.hostport), timeout=EVENT_LIMIT_S) as client:
        _classify(client, 20)
    assert live.classified() == 20


def test_a_killed_replica_costs_no_call_with_retries(replicas: list[Replica]) -> None:
    """A replica dies (SIGKILL: no draining); calls keep succeeding: a call that was sent to it
    fails with UNAVAILABLE and is retried, and round_robin stops picking it."""
    a, b = replicas
    with CnnClient(_target(a.hostport, b.hostport), timeout=EVENT_LIMIT_S) as client:

        def both_served() -> bool:
            _classify(client, 4)
            return a.classified() > 0 and b.classified() > 0

        wait_for(both_served, EVENT_LIMIT_S, what="calls on both replicas")
        a.server.process.signal_group(signal.SIGKILL)
        wait_for(lambda: a.server.process.poll() is not None, EVENT_LIMIT_S, what="the kill")
        before = b.classified()
        _classify(client, 20)
    assert b.classified() - before == 20


def test_service_config_names_the_policy_and_the_retries() -> None:
    config = json.loads(_service_config(3, "round_robin"))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    [method] = config["methodConfig"]
    assert method["retryPolicy"]["maxAttempts"] == 3
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "methodConfig" not in json.loads(_service_config(1, "pick_first"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": 0}, "retries must be 1..5 attempts (gRPC's limit), got 0"),
        ({"retries": 6}, "retries must be 1..5 attempts (gRPC's limit), got 6"),
        (
            {"load_balancing": "grpclb"},
            "load_balancing must be one of round_robin, pick_first, got 'grpclb'",
        ),
    ],
)
def test_bad_client_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        CnnClient("127.0.0.1:1", **kwargs)
    assert str(info.value) == message


def test_a_dns_target_is_accepted() -> None:
    """`dns:///host:port` is a target gRPC resolves itself (every A record of the name)."""
    port = free_port()
    with (
        CnnClient(f"dns:///localhost:{port}", retries=1, timeout=EVENT_LIMIT_S) as client,
        pytest.raises(CnnClientError) as info,
    ):
        client.list_models()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
