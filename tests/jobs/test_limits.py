"""Caps on a training spec (`jobs.limits`), sized from shapes alone, and on the queue's length."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from core import zoo
from jobs import rq_layout
from jobs.errors import MAX_PROBLEMS, InvalidSpec, QueueFull
from jobs.limits import DEFAULT_LIMITS, SpecLimits
from jobs.queue import JobQueue
from jobs.settings import QueueSettings
from jobs.spec import parse_spec, parse_spec_json
from tests.worker.helpers import tiny_spec


def mnist_spec(architecture: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A spec on mnist-5k, whose input shape (1, 28, 28) is known without loading it."""
    return {
        "name": "m",
        "dataset": {"name": "mnist-5k"},
        "architecture": architecture,
        "epochs": 1,
        **overrides,
    }


def problems(data: Any, limits: SpecLimits = DEFAULT_LIMITS) -> list[str]:
    with pytest.raises(InvalidSpec) as raised:
        parse_spec(data, limits)
    return raised.value.errors


#: The issue's example: conv 3x3 pad 1, pool 2 -> 16x14x14 = 3,136 inputs to a dense layer.
def dense_after_conv(units: int) -> list[dict[str, Any]]:
    return [
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": 1},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": units},
        {"type": "dense", "units": 10},
    ]


def test_the_reference_models_pass_the_default_limits() -> None:
    parse_spec(mnist_spec(zoo.lenet5(), batch_size=256, epochs=50))
    parse_spec(
        mnist_spec([*zoo.vgg_small()[:-4], {"type": "flatten"}, {"type": "dense", "units": 10}])
    )


def test_a_million_unit_dense_layer_names_field_estimate_and_limit() -> None:
    found = problems(mnist_spec(dense_after_conv(2**20)))
    assert (
        "architecture.3: dense layer: 1,048,576 units x 3,136 inputs = 3.3 G parameters, "
        "limit CNN_MAX_PARAMETERS=50,000,000"
    ) in found
    assert (
        "architecture.3.units: dense layer: 1,048,576 units, limit CNN_MAX_LAYER_UNITS=65,536"
        in (found)
    )


def test_a_billion_unit_dense_layer_is_refused_without_allocating_it() -> None:
    data = mnist_spec([{"type": "flatten"}, {"type": "dense", "units": 2**30}])
    parse_spec(mnist_spec(zoo.lenet5()))  # imports and first-use caches before measuring
    tracemalloc.start()
    try:
        found = problems(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20
    # 2**30 units x 784 inputs + 2**30 biases = 842.9 G parameters
    assert any(
        p.startswith("architecture.1: dense layer: 1,073,741,824 units x 784 inputs = 842.9 G")
        for p in found
    )


def test_conv_padding_4000_is_refused_for_its_activation_memory() -> None:
    arch = [
        {"type": "conv2d", "filters": 256, "kernel_size": 3, "padding": 4000},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    found = problems(mnist_spec(arch))
    assert "architecture.0.padding: conv2d layer: padding 4,000, limit CNN_MAX_PADDING=64" in found
    # the output alone: 256 x 8,026 x 8,026 float32 = 61.4 GiB per sample
    memory = [p for p in found if "CNN_MAX_ACTIVATION_BYTES" in p]
    assert memory and memory[0].startswith("architecture: training holds ~")
    assert "layer 0, conv2d layer: output 256x8,026x8,026 = 61.4 GiB" in memory[0]
    assert memory[0].endswith("limit CNN_MAX_ACTIVATION_BYTES=536,870,912 (512.0 MiB)")


def test_parameters_over_the_limit_in_all_are_reported_for_the_architecture() -> None:
    arch = [{"type": "flatten"}, {"type": "dense", "units": 100}, {"type": "dense", "units": 10}]
    # 784*100 + 100 = 78,500 and 100*10 + 10 = 1,010: 79,510 in all, each layer under 50,000
    found = problems(mnist_spec(arch), SpecLimits(max_parameters=50_000))
    assert found == [
        "architecture.1: dense layer: 100 units x 784 inputs = 78,500 parameters, "
        "limit CNN_MAX_PARAMETERS=50,000"
    ]
    found = problems(mnist_spec(arch), SpecLimits(max_parameters=79_000))
    assert found == ["architecture: 79,510 parameters in all, limit CNN_MAX_PARAMETERS=79,000"]


def test_a_training_step_over_the_memory_limit_names_the_batch_size() -> None:
    found = problems(
        mnist_spec(zoo.lenet5(), batch_size=4096), SpecLimits(max_training_bytes=2**30)
    )
    assert len(found) == 1 and found[0].startswith("batch_size: a training step on 4,096 samples")
    assert found[0].endswith("limit CNN_MAX_TRAINING_BYTES=1,073,741,824 (1.0 GiB)")


def test_epochs_batch_size_and_timeout_have_caps() -> None:
    found = problems(tiny_spec(epochs=1001, batch_size=5000, timeout_s=90_000))
    assert found == [
        "epochs: 1,001 epochs, limit CNN_MAX_EPOCHS=1,000",
        "batch_size: 5,000 samples per batch, limit CNN_MAX_TRAIN_BATCH_SIZE=4,096",
        "timeout_s: 90,000 s, limit CNN_MAX_TIMEOUT_S=86,400",
    ]


def test_layer_option_caps() -> None:
    arch = [
        {"type": "conv2d", "filters": 5000, "kernel_size": [3, 65]},
        {"type": "maxpool2d", "size": 70},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    found = problems(tiny_spec(architecture=arch))
    assert found[:3] == [
        "architecture.0.filters: conv2d layer: 5,000 filters, limit CNN_MAX_FILTERS=4,096",
        "architecture.0.kernel_size: conv2d layer: kernel_size 65, limit CNN_MAX_KERNEL=64",
        "architecture.1.size: maxpool2d layer: size 70, limit CNN_MAX_KERNEL=64",
    ]


def test_the_limits_come_from_the_settings() -> None:
    settings = QueueSettings.from_env({"CNN_MAX_EPOCHS": "5", "CNN_MAX_PARAMETERS": "1000"})
    limits = settings.spec_limits()
    assert (limits.max_epochs, limits.max_parameters) == (5, 1000)
    assert limits.max_filters == DEFAULT_LIMITS.max_filters
    assert problems(tiny_spec(epochs=6), limits) == ["epochs: 6 epochs, limit CNN_MAX_EPOCHS=5"]


def test_a_data_set_of_unknown_shape_is_sized_once_loaded() -> None:
    spec = parse_spec(
        tiny_spec(dataset={"name": "npz", "path": "big.npz"}, architecture=dense_after_conv(20_000))
    )
    spec.check_model((1, 8, 8), DEFAULT_LIMITS)  # 16x4x4 inputs: 5.1 M parameters
    with pytest.raises(InvalidSpec, match=r"architecture\.3: dense layer: 20,000 units x 3,136"):
        spec.check_model((1, 28, 28), DEFAULT_LIMITS)


def test_hostile_specs_are_invalid_not_crashes() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidSpec, match="nested too deeply"):
        parse_spec_json(json.dumps(tiny_spec())[:-1] + f', "x": {deep}}}')
    nested_option: Any = 1
    for _ in range(5000):
        nested_option = [nested_option]
    found = problems(tiny_spec(architecture=[{"type": "dense", "units": nested_option}]))
    assert found and all(len(p) <= 300 for p in found)
    found = problems(
        tiny_spec(architecture=[{"type": "leaky_relu", "alpha": 10**400}, {"type": "flatten"}])
    )
    assert found[0].startswith("architecture.0: a number is too large")


def test_an_invalid_spec_names_a_bounded_number_of_clipped_problems() -> None:
    found = problems({**tiny_spec(), **{f"unknown{i}" + "x" * 1000: 1 for i in range(50)}})
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1] == f"... and {50 - MAX_PROBLEMS} more problems"
    assert all(len(p) <= 300 for p in found)


@pytest.fixture()
def small_queue(redis_url: str) -> Any:
    settings = QueueSettings.from_env({}, redis_url=redis_url, max_queued_jobs=2)
    with JobQueue.connect(settings) as job_queue:
        yield job_queue


def test_a_full_queue_refuses_a_submit_and_queues_nothing(small_queue: JobQueue) -> None:
    small_queue.submit(tiny_spec("a"))
    small_queue.submit(tiny_spec("b"))
    with pytest.raises(QueueFull) as raised:
        small_queue.submit(tiny_spec("c"))
    assert str(raised.value) == (
        "queue 'training' holds 2 jobs waiting for a worker, limit CNN_MAX_QUEUED_JOBS=2; "
        "submit again once some have started"
    )
    assert small_queue._redis.llen(rq_layout.queue_key("training")) == 2
    small_queue._redis.lpop(rq_layout.queue_key("training"))  # a worker took one
    small_queue.submit(tiny_spec("d"))


def test_a_submit_is_held_to_the_queues_own_limits(redis_url: str) -> None:
    settings = QueueSettings.from_env({}, redis_url=redis_url, max_epochs=2)
    with (
        JobQueue.connect(settings) as job_queue,
        pytest.raises(InvalidSpec, match="CNN_MAX_EPOCHS=2"),
    ):
        job_queue.submit(tiny_spec(epochs=3))
