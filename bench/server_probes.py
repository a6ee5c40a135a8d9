"""What the serving benchmark asks the server under test, besides the load itself.

Whether the model is loaded, what one Classify call answers (checked before and after each
level), how many requests its Prometheus counter saw per gRPC status code (h2load cannot see
the codes), and how many images and forward passes its V2 statistics report (mean batch).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from bench.payload import CLASSIFY_METHOD, MODEL
from bench.processes import ROOT

REQUESTS_METRIC = "cnn_grpc_requests"  # server.metrics.REQUESTS (a Counter: samples "..._total")


def wait_model(address: str, timeout: float = 120.0, name: str = MODEL) -> None:
    """Poll ListModels until the model `name` (default: digits) is served.

    Raises:
        RuntimeError: it is not listed after `timeout` seconds.
    """
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ClassifierStub(channel)
        while time.monotonic() < deadline:
            if any(
                m.name == name for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models
            ):
                return
            time.sleep(0.1)
    raise RuntimeError(f"model {name!r} did not load")


def top_class(address: str, payload: bytes) -> str:
    """Top class name of one gRPC Python Classify call with `payload`.

    Raises:
        RuntimeError: the call failed; names its status code.
    """
    import grpc

    from proto.cnn.v1 import classifier_pb2 as pb
    from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = pb_grpc.ClassifierStub(channel).Classify(
                pb.ClassifyRequest.FromString(payload), timeout=10
            )
        except grpc.RpcError as exc:
            raise RuntimeError(f"check call failed: {exc.code()}: {exc.details()}") from None
    return str(reply.results[0].class_names[0])


def check_classify(address: str, payload: bytes, expected: str, when: str) -> None:
    """One Classify call must still answer `expected` as its top class (`when`: for the error).

    Raises:
        RuntimeError: the call failed or answered another class.
    """
    got = top_class(address, payload)
    if got != expected:
        raise RuntimeError(f"Classify check {when}: top class {got!r}, expected {expected!r}")


def grpc_codes(exposition: str, method: str) -> dict[str, int]:
    """Per status code, the requests of `method` counted in `cnn_grpc_requests_total`.

    Args:
        exposition: a Prometheus text exposition (the server's /metrics page).
        method: full gRPC method name, e.g. "/cnn.v1.Classifier/Classify".
    """
    from prometheus_client.parser import text_string_to_metric_families

    codes: dict[str, int] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != REQUESTS_METRIC:
            continue
        for sample in family.samples:
            if sample.name == REQUESTS_METRIC + "_total" and sample.labels["method"] == method:
                code = sample.labels["code"]
                codes[code] = codes.get(code, 0) + int(sample.value)
    return codes


def codes_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per status code, how much its count grew from `before` to `after` (if it grew)."""
    grown = {code: after[code] - before.get(code, 0) for code in after}
    return {code: n for code, n in sorted(grown.items()) if n > 0}


def scrape_codes(metrics_port: int, method: str = CLASSIFY_METHOD) -> dict[str, int]:
    """:func:`grpc_codes` of `method` (default Classify) from the server's /metrics page on
    `metrics_port`."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return grpc_codes(response.read().decode(), method)


def batch_stats(address: str) -> tuple[int, int]:
    """(images inferred, forward passes) of the digits model so far (V2 statistics)."""
    code = (
        "import sys, tritonclient.grpc as tc\n"
        "c = tc.InferenceServerClient(sys.argv[1])\n"
        f"s = c.get_inference_statistics({MODEL!r}, as_json=True)['model_stats']\n"
        "print(sum(int(m.get('inference_count', 0)) for m in s),"
        " sum(int(m.get('execution_count', 0)) for m in s))\n"
    )
    # A child process: tritonclient's `inference` stubs must not share our protobuf pool.
    out = subprocess.run(
        [sys.executable, "-c", code, address], capture_output=True, text=True, check=True, cwd=ROOT
    )
    images, passes = out.stdout.split()
    return int(images), int(passes)
