"""`cnn_cli.settings.CliSettings`: the `cnn` command's one settings object."""

from __future__ import annotations

import pytest

from cnn_cli.settings import CliSettings
from core.settings import SettingsError


def test_defaults_go_to_redis_on_this_machine_and_no_server_is_asked_for() -> None:
    settings = CliSettings.from_env({})
    assert settings.address is None and settings.token is None
    assert (settings.redis_url, settings.queue, settings.timeout) == (
        "redis://127.0.0.1:6379/0",
        "training",
        30.0,
    )


def test_connection_and_queue_variables_are_read() -> None:
    settings = CliSettings.from_env(
        {"CNN_ADDRESS": "server:50051", "CNN_QUEUES": "fast, slow", "CNN_TIMEOUT": "5"}
    )
    assert (settings.address, settings.queues, settings.timeout) == (
        "server:50051",
        ("fast", "slow"),
        5.0,
    )


def test_the_token_is_never_shown() -> None:
    assert CliSettings.from_env({"CNN_TOKEN": "s3cret"}).describe()["CNN_TOKEN"] == "***"


def test_an_invalid_timeout_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CNN_TIMEOUT"):
        CliSettings.from_env({"CNN_TIMEOUT": "0"})
