"""Server replicas behind the L7 gRPC balancer (docker/compose.replicas.yml): under continuous
load one replica is killed and started again, and a new model version is published.

docker/compose-suite.sh runs this file in its replicas stage, with CNN_IT_GRPC_ADDRESS naming
the balancer, CNN_IT_REPLICAS the replicas' service names (each reached directly on :50051,
its Prometheus counters on :9100) and CNN_IT_BALANCER_METRICS HAProxy's own Prometheus
endpoint; the stack controller kills and starts replicas. Without them (local processes, the
other compose stages) the tests skip.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.stack import wait_until_serving
from cnn_client import CnnClient, CnnClientError
from tests.integration import clients
from tests.integration.conftest import unique
from tests.integration.stack import Stack
from tests.support.limits import COLD_START_LIMIT_S, EVENT_LIMIT_S
from tests.support.metrics import metric_value, requests_handled
from tests.support.polling import wait_for

REPLICAS = [name.strip() for name in os.environ.get("CNN_IT_REPLICAS", "").split(",") if name]
BALANCER_METRICS = os.environ.get("CNN_IT_BALANCER_METRICS", "")
GRPC_PORT = 50051
METRICS_PORT = 9100
#: Calls each replica must answer to count as taking traffic (a handful: guards a fluke).
SHARE = 5

pytestmark = [
    pytest.mark.integration,
    pytest.mark.replicas,
    pytest.mark.skipif(
        len(REPLICAS) < 2 or not BALANCER_METRICS,
        reason="no replicas stack named (CNN_IT_REPLICAS, CNN_IT_BALANCER_METRICS)",
    ),
]


def _metrics_url(replica: str) -> str:
    return f"http://{replica}:{METRICS_PORT}/metrics"


def _classified(replica: str) -> int:
    """Classify calls the replica itself answered OK (its own counter; 0 after a restart)."""
    return requests_handled(_metrics_url(replica))


def _started_at(replica: str) -> float:
    """The replica's process start time (prometheus_client's process collector)."""
    return metric_value(_metrics_url(replica), "process_start_time_seconds")


def _balancer(sample: str, **labels: str) -> float:
    return metric_value(BALANCER_METRICS, sample, **labels)


def _in_rotation(replica: str) -> bool:
    """The balancer's view: the replica passed its gRPC health checks (state UP)."""
    return _balancer("haproxy_server_status", server=replica, state="UP") == 1


class Load:
    """Classify calls through the balancer from `threads` threads until stopped, each with
    cnn_client's retries (UNAVAILABLE, up to 5 attempts); counts answers and failures."""

    def __init__(self, address: str, model: str, images: np.ndarray, threads: int = 2) -> None:
        self.answered = 0
        self.slowest_s = 0.0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = CnnClient(address, retries=5, timeout=EVENT_LIMIT_S)
        self._model, self._images = model, images
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(EVENT_LIMIT_S)
        self._client.close()

    def _run(self) -> None:
        # Paced a little: the replicas, the balancer, a worker and this client share CI's cores.
        while not self._stop.wait(0.01):
            started = time.monotonic()
            try:
                self._client.classify_batch(self._images, model=self._model)
            except CnnClientError as exc:
                with self._lock:
                    self.failures.append(f"{exc.code.name}: {exc}")
            else:
                with self._lock:
                    self.answered += 1
                    self.slowest_s = max(self.slowest_s, time.monotonic() - started)

    def more_answers(self, count: int) -> None:
        """Wait until `count` more calls have been answered."""
        target = self.answered + count
        wait_for(lambda: self.answered >= target, EVENT_LIMIT_S, what=f"{count} more answers")


def _train(stack: Stack, name: str, workdir: Path, seed: int) -> int:
    """Train a 1-epoch digits model through the queue; returns the version it published."""
    spec = clients.digits_spec(name, epochs=1, seed=seed)
    job_id = clients.submit(spec, workdir, stack.redis_url)
    clients.cnn("train", "watch", job_id, "--timeout", "300", redis_url=stack.redis_url).check()
    return int(clients.job_status(job_id, stack.redis_url)["model_version"])


def _wait_loaded(replica: str, name: str, version: int) -> None:
    with clients.OwnApi(f"{replica}:{GRPC_PORT}") as api:
        api.wait_for_model(name, version)


@pytest.fixture(scope="module")
def model(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = unique("it-replicas")
    version = _train(stack, name, tmp_path_factory.mktemp("specs"), seed=0)
    assert version == 1
    for replica in REPLICAS:
        _wait_loaded(replica, name, 1)
    yield name


def _restart(stack: Stack, replica: str, model: str, version: int, process: float) -> None:
    """Start the replica again; wait until it serves `model`, and the balancer sends it calls
    again (a new process: its counters started from 0)."""
    stack.start_replica(replica)
    wait_until_serving(f"{replica}:{GRPC_PORT}", timeout=COLD_START_LIMIT_S)
    assert _started_at(replica) != process
    _wait_loaded(replica, model, version)
    wait_for(lambda: _in_rotation(replica), EVENT_LIMIT_S, what=f"{replica} back in rotation")
    restarted = _classified(replica)
    wait_for(
        lambda: _classified(replica) >= restarted + SHARE,
        EVENT_LIMIT_S,
        what=f"{replica} to answer calls through the balancer again",
    )


def test_replicas_killed_or_stopped_cost_no_request_and_new_versions_reach_every_one(
    stack: Stack, model: str, tmp_path: Path
) -> None:
    first, second = REPLICAS[0], REPLICAS[1]
    images, _ = clients.digits_images(8)
    started = time.monotonic()
    with Load(stack.grpc_address, model, images) as load:
        # 1. The balancer spreads the calls: both replicas' own counters grow.
        before = {r: _classified(r) for r in REPLICAS}
        wait_for(
            lambda: all(_classified(r) >= before[r] + SHARE for r in REPLICAS),
            EVENT_LIMIT_S,
            what="both replicas to answer calls through the balancer",
        )
        # 2. One replica crashes (SIGKILL, calls in flight); the balancer takes it out, and
        # the calls go on on the other, those that were on the dead one retried.
        process = _started_at(first)
        killed_at = load.answered
        stack.kill_replica(first)
        wait_for(lambda: not _in_rotation(first), EVENT_LIMIT_S, what=f"{first} out")
        survivor_before = _classified(second)
        load.more_answers(50)  # while the killed replica is down
        assert _classified(second) >= survivor_before + 50
        answered_while_down = load.answered - killed_at
        # 3. It is started again and takes calls again.
        _restart(stack, first, model, 1, process)
        # 4. The other one is stopped (SIGTERM: a rolling update): it drains, reporting
        # NOT_SERVING until the balancer took it out, and exits; then it is started again.
        process = _started_at(second)
        stack.stop_replica(second)
        wait_for(lambda: not _in_rotation(second), EVENT_LIMIT_S, what=f"{second} out")
        load.more_answers(50)
        _restart(stack, second, model, 1, process)
        # 5. A new version, published while the load goes on, reaches both replicas.
        version = _train(stack, model, tmp_path, seed=1)
        assert version == 2
        for replica in REPLICAS:
            _wait_loaded(replica, model, version)
        load.more_answers(10)
    served = {r: _classified(r) for r in REPLICAS}
    print(
        f"replicas: {load.answered} calls answered in {time.monotonic() - started:.1f} s, "
        f"{len(load.failures)} failed, slowest {load.slowest_s * 1000:.0f} ms; "
        f"{answered_while_down} from the kill until {first} was out and 50 more were answered; "
        f"answered per replica now (since its start): {served}; balancer: "
        f"{_balancer('haproxy_frontend_http_responses_total', proxy='grpc', code='5xx'):.0f} "
        "5xx answers (502: a call on the killed replica, retried by the client), "
        + ", ".join(
            f"{r}: {_balancer('haproxy_server_connection_errors_total', server=r):.0f} "
            f"connection errors, "
            f"{_balancer('haproxy_server_check_up_down_total', server=r):.0f} up->down"
            for r in REPLICAS
        )
        + f", {_balancer('haproxy_backend_redispatch_warnings_total', proxy='replicas'):.0f} "
        "redispatched"
    )
    assert load.failures == [], load.failures[:10]
