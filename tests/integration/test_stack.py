"""The whole system end to end: train through the queue, serve through both gRPC APIs.

Runs against local processes by default, or against a running compose stack when the
`CNN_IT_*` variables name one (see tests/integration/stack.py). The tests run in file order:
the last one restarts the server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_cli.stack import wait_until_serving
from tests.integration import clients
from tests.integration.conftest import TrainedModel, unique
from tests.integration.stack import ControlUnavailable, Stack
from tests.support.limits import COLD_START_LIMIT_S, EVENT_LIMIT_S
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def test_cli_submit_and_watch_train_a_model(stack: Stack, digits_model: TrainedModel) -> None:
    assert digits_model.watch.returncode == 0, digits_model.watch
    assert digits_model.status["status"] == "finished", digits_model.status
    assert digits_model.status["model"] == digits_model.name
    assert digits_model.version >= 1
    if stack.models_dir is not None:
        version_dir = stack.models_dir / digits_model.name / str(digits_model.version)
        assert (version_dir / "model.json").is_file()
        assert (version_dir / "weights.npz").is_file()


def test_own_api_classifies_digits_with_the_trained_model(
    stack: Stack, digits_model: TrainedModel
) -> None:
    images, labels = clients.digits_images()
    with clients.OwnApi(stack.grpc_address) as api:
        api.wait_for_model(digits_model.name, digits_model.version)
        version, predicted = api.classify(digits_model.name, images)
    assert version == digits_model.version
    accuracy = float(np.mean(predicted == labels))
    assert accuracy >= 0.8, f"accuracy {accuracy:.3f} on {len(labels)} digits"


def test_kserve_v2_api_agrees_with_the_own_api(stack: Stack, digits_model: TrainedModel) -> None:
    images, _ = clients.digits_images(64)
    with clients.OwnApi(stack.grpc_address) as api:
        api.wait_for_model(digits_model.name, digits_model.version)
        _, own = api.classify(digits_model.name, images)
    v2 = clients.classify_v2(stack.grpc_address, digits_model.name, images)
    np.testing.assert_array_equal(v2, own)


def test_two_workers_train_two_models_at_once(stack: Stack, tmp_path: Path) -> None:
    """A worker runs one job at a time: a job that runs and finishes while another keeps
    running ran on a second worker, at the same time. The first job is long (hours) so that
    it is still running whatever the machine's speed; the test then cancels it."""
    try:
        stack.scale_workers(2)
    except ControlUnavailable as exc:
        pytest.skip(str(exc))
    clients.wait_for_workers(stack.redis_url, 2)
    # Within the default caps (CNN_MAX_EPOCHS, CNN_MAX_TIMEOUT_S); one sample per step makes
    # an epoch long enough that the job outlasts the short one on any machine.
    long_spec = {
        **clients.digits_spec(unique("it-long"), epochs=1000),
        "batch_size": 1,
        "timeout_s": 12 * 3600,
    }
    short_spec = clients.digits_spec(unique("it-pair"), epochs=6, seed=1)

    long_id = clients.submit(long_spec, tmp_path, stack.redis_url)
    wait_for(
        lambda: clients.job_status(long_id, stack.redis_url)["status"] == "running",
        COLD_START_LIMIT_S,
        what="the long job to start",
    )
    short_id = clients.submit(short_spec, tmp_path, stack.redis_url)
    clients.cnn("train", "watch", short_id, "--timeout", "300", redis_url=stack.redis_url).check()
    short, long = (clients.job_status(i, stack.redis_url) for i in (short_id, long_id))

    assert short["status"] == "finished", short
    assert long["status"] == "running", long  # it was running all along: another worker
    clients.cnn("train", "cancel", long_id, redis_url=stack.redis_url).check()
    wait_for(
        lambda: clients.job_status(long_id, stack.redis_url)["status"] == "cancelled",
        EVENT_LIMIT_S,
        what="the long job to stop",
    )
    with clients.OwnApi(stack.grpc_address) as api:
        api.wait_for_model(short_spec["name"], int(short["model_version"]))


def test_server_restart_reloads_the_models(stack: Stack, digits_model: TrainedModel) -> None:
    images, _ = clients.digits_images(64)
    with clients.OwnApi(stack.grpc_address) as api:
        api.wait_for_model(digits_model.name, digits_model.version)
        before = api.list_models()
        _, predicted_before = api.classify(digits_model.name, images)
    try:
        stack.restart_server()
    except ControlUnavailable as exc:
        pytest.skip(str(exc))
    wait_until_serving(stack.grpc_address, timeout=COLD_START_LIMIT_S)

    with clients.OwnApi(stack.grpc_address) as api:
        for name, versions in before.items():
            api.wait_for_model(name, max(versions))
        version, predicted_after = api.classify(digits_model.name, images)
    assert version == digits_model.version
    np.testing.assert_array_equal(predicted_after, predicted_before)
