"""Fixtures of the integration suite: the stack (local processes or compose) and a model."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cnn_cli.stack import wait_until_serving
from tests.integration import clients
from tests.integration.stack import LocalProcesses, Stack, stack_from_env
from tests.support.limits import COLD_START_LIMIT_S


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "replicas: needs the compose replicas stage (docker/compose.replicas.yml)"
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack under test: `CNN_IT_*` variables name a running one, else local processes."""
    stack = stack_from_env(tmp_path_factory.mktemp("stack"))
    try:
        wait_until_serving(stack.grpc_address, timeout=COLD_START_LIMIT_S)
        yield stack
    finally:
        stack.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failure against local processes, attach the processes' logs to the report."""
    report = yield
    if report.failed and "stack" in getattr(item, "funcargs", {}):
        stack = item.funcargs["stack"]
        if isinstance(stack, LocalProcesses):
            report.sections.append(("stack logs", stack.logs()))
    return report


def unique(prefix: str) -> str:
    """A model name no earlier run used (compose volumes may outlive a run)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: int
    job_id: str
    watch: clients.CliResult
    status: dict


@pytest.fixture(scope="session")
def digits_model(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A digits model trained through `cnn train submit` + `cnn train watch`."""
    workdir = tmp_path_factory.mktemp("specs")
    # with event files: the compose suite then checks the TensorBoard profile serves this run
    spec = {**clients.digits_spec(unique("it-digits"), epochs=4), "tensorboard": True}
    job_id = clients.submit(spec, workdir, stack.redis_url)
    started = time.monotonic()
    watch = clients.cnn("train", "watch", job_id, "--timeout", "300", redis_url=stack.redis_url)
    status = clients.job_status(job_id, stack.redis_url)
    metrics = status.get("metrics") or {}
    print(
        f"trained {spec['name']} in {time.monotonic() - started:.1f} s: {status['status']}, "
        f"test accuracy {metrics.get('test_accuracy')}"
    )
    return TrainedModel(spec["name"], int(status.get("model_version") or 0), job_id, watch, status)
