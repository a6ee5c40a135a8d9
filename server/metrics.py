"""Prometheus metrics of the server process (exposed on CNN_METRICS_PORT when set).

Under the supervisor (CNN_SERVER_PROCESSES > 1) prometheus_client runs in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR set by the supervisor): these metrics go to per-process files that
the supervisor's endpoint sums; `serve` is not called in a serving process then.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
)  # fmt: skip

REQUESTS = Counter(
    "cnn_grpc_requests",
    "gRPC requests handled, by full method name and status code.",
    ["method", "code"],
)
LATENCY = Histogram(
    "cnn_grpc_request_duration_seconds",
    "Server-side gRPC request latency in seconds, by method.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
STREAMS = Counter(
    "cnn_grpc_streams",
    "Bidirectional streaming calls ended, by full method name and status code (each of their "
    "messages counts in cnn_grpc_requests like a unary request).",
    ["method", "code"],
)
INFERENCE_IMAGES = Counter("cnn_inference_images", "Images classified, by model.", ["model"])
INFERENCE_LATENCY = Histogram(
    "cnn_inference_duration_seconds",
    "Time from submission to the batcher to the result (queue + forward pass), seconds.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
EXPLAIN_LATENCY = Histogram(
    "cnn_explain_duration_seconds",
    "Classifier.Explain requests answered, by model: time from the request to the answer "
    "(decode, queue, forward and backward pass, pictures), seconds.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "cnn_batch_size",
    "Images per forward pass of the dynamic batcher, by model.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_REQUESTS = Histogram(
    "cnn_batch_requests",
    "Requests sharing one forward pass, by model.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
FORWARD_LATENCY = Histogram(
    "cnn_forward_duration_seconds",
    "Duration of one batched forward pass, seconds, by model.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
# Several serving processes (server.supervisor): the most versions any live process holds,
# and the default version every live process has reached.
VERSIONS_LOADED = Gauge(
    "cnn_model_versions_loaded",
    "Number of loaded versions, by model.",
    ["model"],
    multiprocess_mode="livemax",
)
DEFAULT_VERSION = Gauge(
    "cnn_model_default_version",
    "Version served by default (newest loaded), by model.",
    ["model"],
    multiprocess_mode="livemin",
)


_INFERENCE_CHILDREN: dict[str, tuple[Any, Any]] = {}


def observe_inference(model: str, images: int, seconds: float) -> None:
    children = _INFERENCE_CHILDREN.get(model)
    if children is None:  # label lookups cached: this runs on every request
        children = (INFERENCE_IMAGES.labels(model), INFERENCE_LATENCY.labels(model))
        _INFERENCE_CHILDREN[model] = children
    children[0].inc(images)
    children[1].observe(seconds)


def observe_explain(model: str, seconds: float) -> None:
    EXPLAIN_LATENCY.labels(model).observe(seconds)


_REQUEST_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}


def observe_request(method: str, code: str, seconds: float) -> None:
    """Count one request that a streaming handler answered, as unary requests are counted."""
    children = _REQUEST_CHILDREN.get((method, code))
    if children is None:  # label lookups cached: this runs on every streamed request
        children = (REQUESTS.labels(method, code), LATENCY.labels(method))
        _REQUEST_CHILDREN[(method, code)] = children
    children[0].inc()
    children[1].observe(seconds)


def batch_observer(model: str) -> Any:
    """Callback for `Batcher(observe=...)` recording batch size and forward time."""
    size = BATCH_SIZE.labels(model)
    reqs = BATCH_REQUESTS.labels(model)
    forward = FORWARD_LATENCY.labels(model)

    def observe(images: int, requests: int, seconds: float) -> None:
        size.observe(images)
        reqs.observe(requests)
        forward.observe(seconds)

    return observe


def set_loaded(versions: dict[str, list[int]]) -> None:
    """Publish the loaded versions per model (models no longer loaded drop to 0)."""
    for metric in (VERSIONS_LOADED, DEFAULT_VERSION):
        for labels in list(metric._metrics):  # reset vanished models
            if labels[0] not in versions:
                metric.labels(*labels).set(0)
    for name, vs in versions.items():
        VERSIONS_LOADED.labels(name).set(len(vs))
        DEFAULT_VERSION.labels(name).set(max(vs) if vs else 0)


def serve(host: str, port: int) -> int:
    """Start the /metrics HTTP endpoint in a daemon thread; return the bound port."""
    server, _thread = start_http_server(port, addr=host)
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound
