"""Training.Submit against hostile specs (issue #13): a real server and a real redis-server.

Hypothesis generates training specs, valid-ish and hostile (huge units, filters, padding and
kernels, deep stacks, wrong types, huge epochs/batch/timeout, unknown keys, deep nesting, big
strings). Every answer must be OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED (the queue is capped
low so that the cap answers too), never INTERNAL or UNKNOWN; each arrives within the gRPC
deadline; and the server's resident memory grows by less than `RSS_GROWTH_BOUND` over the whole
run: specs are sized from their shapes, never built.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_cli.redis_server import RedisServer
from proto.cnn.v1 import training_pb2 as pb
from proto.cnn.v1 import training_pb2_grpc as pb_grpc
from tests.server.serverproc import ServerProcess, start_server

#: The deadline of every Submit: a bound on the answer time, not a measurement.
DEADLINE_S = 30.0
#: How much the server's resident memory may grow over all examples.
RSS_GROWTH_BOUND = 100 * 2**20
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on a real Redis whose queue holds at most 5 jobs (no worker takes them)."""
    root = tmp_path_factory.mktemp("robustness")
    models = root / "models"
    models.mkdir()
    redis_server = RedisServer(root / "redis").start()
    try:
        env = {
            "CNN_REDIS_URL": redis_server.url,
            "CNN_MAX_QUEUED_JOBS": "5",
            "CNN_SUBMIT_RATE_PER_MIN": "0",  # hundreds of submits from one client, on purpose
        }
        process = start_server(root / "server", models, env)
        try:
            yield process
        finally:
            process.stop()
    finally:
        redis_server.stop()


def submit(server: ServerProcess, spec_json: str) -> tuple[grpc.StatusCode, str]:
    with server.channel() as channel:
        stub = pb_grpc.TrainingStub(channel)
        try:
            stub.Submit(pb.SubmitRequest(spec_json=spec_json), timeout=DEADLINE_S)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def spec(architecture: list[Any], **overrides: Any) -> str:
    return json.dumps(
        {"name": "m", "dataset": {"name": "mnist-5k"}, "architecture": architecture, **overrides}
    )


# -- the examples ----------------------------------------------------------------------


def test_a_million_unit_dense_layer_is_invalid_naming_field_estimate_and_limit(
    server: ServerProcess,
) -> None:
    arch = [
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": 1},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 2**20},
        {"type": "dense", "units": 10},
    ]
    code, details = submit(server, spec(arch))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "architecture.3: dense layer: 1,048,576 units x 3,136 inputs = 3.3 G parameters, "
        "limit CNN_MAX_PARAMETERS=50,000,000"
    ) in details


def test_a_billion_unit_dense_layer_is_invalid_not_internal(server: ServerProcess) -> None:
    code, details = submit(server, spec([{"type": "flatten"}, {"type": "dense", "units": 2**30}]))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "architecture.1: dense layer: 1,073,741,824 units x 784 inputs = 842.9 G" in details
    assert "limit CNN_MAX_PARAMETERS=50,000,000" in details


def test_conv_padding_4000_with_256_filters_is_invalid_for_its_memory(
    server: ServerProcess,
) -> None:
    arch = [
        {"type": "conv2d", "filters": 256, "kernel_size": 3, "padding": 4000},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    code, details = submit(server, spec(arch))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "architecture.0.padding: conv2d layer: padding 4,000, limit CNN_MAX_PADDING=64" in details
    )
    assert "output 256x8,026x8,026 = 61.4 GiB" in details
    assert "limit CNN_MAX_ACTIVATION_BYTES=536,870,912" in details


# -- generated specs ---------------------------------------------------------------------------

huge = st.integers(min_value=-(2**70), max_value=2**70)
size_int = st.one_of(
    st.integers(min_value=0, max_value=16), st.integers(min_value=2**10, max_value=2**40)
)
odd_value = st.one_of(
    st.none(),
    st.booleans(),
    huge,
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),  # big strings
    st.lists(st.integers(min_value=-3, max_value=5000), max_size=5),
)
int_or_odd = st.one_of(size_int, size_int, odd_value)

layer = st.one_of(
    st.fixed_dictionaries({"type": st.just("dense"), "units": int_or_odd}),
    st.fixed_dictionaries(
        {"type": st.just("conv2d"), "filters": int_or_odd, "kernel_size": int_or_odd},
        optional={
            "padding": st.one_of(int_or_odd, st.sampled_from(["same", "valid"])),
            "stride": int_or_odd,
            "dilation": int_or_odd,
            "groups": int_or_odd,
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["maxpool2d", "avgpool2d"])},
        optional={"size": int_or_odd, "padding": int_or_odd, "stride": int_or_odd},
    ),
    st.sampled_from(
        [{"type": t} for t in ("relu", "flatten", "batchnorm2d", "global_avgpool2d", "dropout")]
    ),
    st.dictionaries(st.text(max_size=8), odd_value, max_size=4),  # unknown types and keys
    odd_value,  # not an object at all
)
tail = [{"type": "flatten"}, {"type": "dense", "units": 10}]
architecture = st.one_of(
    st.lists(layer, max_size=6).map(lambda layers: [*layers, *tail]),
    st.integers(min_value=0, max_value=1200).map(lambda n: [{"type": "relu"}] * n + tail),
    odd_value,
)
spec_fields = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("m"), st.text(max_size=70)),
        "dataset": st.one_of(
            st.fixed_dictionaries({"name": st.sampled_from(["digits", "mnist-5k", "npz", "?"])}),
            odd_value,
        ),
        "architecture": architecture,
    },
    optional={
        "epochs": int_or_odd,
        "batch_size": int_or_odd,
        "timeout_s": int_or_odd,
        "optimizer": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["adam", "sgd", "lion"]), "lr": odd_value}
            ),
            odd_value,
        ),
        "unknown": odd_value,
    },
)


valid_ish = st.fixed_dictionaries(
    {
        "name": st.just("m"),
        "dataset": st.just({"name": "digits"}),
        "architecture": st.tuples(
            st.integers(min_value=1, max_value=8), st.integers(min_value=2, max_value=64)
        ).map(
            lambda fu: [
                {"type": "conv2d", "filters": fu[0], "kernel_size": 3, "padding": "same"},
                {"type": "relu"},
                {"type": "flatten"},
                {"type": "dense", "units": fu[1]},
                {"type": "relu"},
                {"type": "dense", "units": 10},  # digits' class count, checked at submit
            ]
        ),
        "epochs": st.integers(min_value=1, max_value=3),
    }
)


def deep_nesting(depth: int) -> str:
    return '{"name": "m", "dataset": {"name": "digits"}, "architecture": ' + (
        "[" * depth + "]" * depth + "}"
    )


spec_text = st.one_of(
    valid_ish.map(json.dumps),
    spec_fields.map(json.dumps),
    spec_fields.map(json.dumps),
    spec_fields.map(json.dumps),
    st.integers(min_value=1, max_value=200_000).map(deep_nesting),
    st.text(max_size=100),
)


def test_generated_specs_get_an_answer_never_an_internal_error_nor_memory_growth(
    server: ServerProcess,
) -> None:
    # warm up every path once (imports, first estimate, first enqueue) before the baseline
    for text in (spec(tail), spec([{"type": "flatten"}, {"type": "dense", "units": 2**30}])):
        submit(server, text)
    baseline = rss_bytes(server.process.pid)
    answers: dict[grpc.StatusCode, int] = {}

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec_text)
    def each(text: str) -> None:
        code, details = submit(server, text)
        answers[code] = answers.get(code, 0) + 1
        assert code in ALLOWED, f"{code.name}: {details}"

    each()
    growth = rss_bytes(server.process.pid) - baseline
    assert growth < RSS_GROWTH_BOUND, f"server RSS grew by {growth / 2**20:.1f} MiB"
    assert answers.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0
    assert answers.get(grpc.StatusCode.RESOURCE_EXHAUSTED, 0) > 0  # the queue cap answered
