"""Reading Prometheus endpoints (a server's CNN_METRICS_PORT, the balancer's), as a scraper
would."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

CLASSIFY_METHOD = "/cnn.v1.Classifier/Classify"


def metric_value(metrics_url: str, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels` (0 when none)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                total += found.value
    return total


def requests_handled(metrics_url: str, method: str = CLASSIFY_METHOD, code: str = "OK") -> int:
    """A server's `cnn_grpc_requests_total` of one method and status code (0 before the first
    such request)."""
    return int(metric_value(metrics_url, "cnn_grpc_requests_total", method=method, code=code))
