"""Version lifecycle against the stack (local processes or compose): the server writes the
model's `policy.json` into its repository volume and every server of the stack follows it."""

from __future__ import annotations

import pytest

from cnn_client import CnnClient, VersionPolicy
from tests.integration.conftest import TrainedModel
from tests.integration.stack import Stack
from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def _status(address: str, name: str) -> tuple[str, list[int]]:
    with CnnClient(address, timeout=EVENT_LIMIT_S) as client:
        for status in client.model_statuses():
            if status.name == name:
                return status.state, status.versions
    return "", []


def test_unload_load_and_policy_on_the_stack(stack: Stack, digits_model: TrainedModel) -> None:
    name, version = digits_model.name, digits_model.version
    address = stack.grpc_address
    with CnnClient(address, timeout=EVENT_LIMIT_S) as client:
        wait_for(lambda: version in client.list_models().get(name, []), EVENT_LIMIT_S)
        try:
            client.unload_model(name)
            wait_for(
                lambda: _status(address, name) == ("UNLOADED", []),
                EVENT_LIMIT_S,
                what=f"{name} unloaded",
            )
            client.load_model(name)
            client.set_version_policy(name, VersionPolicy("specific", versions=(version,)))
            wait_for(
                lambda: _status(address, name) == ("LOADED", [version]),
                EVENT_LIMIT_S,
                what=f"{name} serving {version} again",
            )
            assert client.get_version_policy(name).policy == VersionPolicy(
                "specific", versions=(version,)
            )
        finally:
            client.load_model(name)
            client.set_version_policy(name, None)
        wait_for(
            lambda: version in client.list_models().get(name, []),
            EVENT_LIMIT_S,
            what=f"{name} {version} served after the test",
        )
