"""The one settings mechanism (`core.settings`) and the server's settings built on it."""

from __future__ import annotations

import pytest
from pydantic import Field

from core.settings import ServiceSettings, SettingsError, redact_url, settings_table
from server.settings import Settings


class _Example(ServiceSettings):
    size: int = Field(3, ge=1, description="How many, a count.")
    url: str = Field("redis://127.0.0.1:6379/0", description="Where | to go.")
    token: str | None = Field(None, description="Secret.", json_schema_extra={"secret": True})
    cache: str | None = Field(None, validation_alias="NUMBA_CACHE_DIR", description="Alias.")


def test_fields_are_read_from_cnn_variables_and_empty_means_default() -> None:
    settings = _Example.from_env({"CNN_SIZE": "7", "CNN_URL": "", "NUMBA_CACHE_DIR": "/c"})
    assert settings.size == 7
    assert settings.url == "redis://127.0.0.1:6379/0"
    assert settings.cache == "/c"


def test_an_explicit_environment_does_not_read_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CNN_SIZE", "9")
    assert _Example.from_env({}).size == 3
    assert _Example.from_env().size == 9


def test_overrides_win_over_the_environment() -> None:
    assert _Example.from_env({"CNN_SIZE": "7"}, size=5).size == 5


def test_an_invalid_value_names_the_variable_and_the_limit() -> None:
    with pytest.raises(SettingsError, match=r"CNN_SIZE: .*greater than or equal to 1.*'0'"):
        _Example.from_env({"CNN_SIZE": "0"})


def test_errors_and_descriptions_never_show_a_secret() -> None:
    env = {"CNN_SIZE": "x", "CNN_TOKEN": "t0ken", "CNN_URL": "redis://u:pw@h:1/0?password=pw"}
    settings = _Example.from_env({**env, "CNN_SIZE": "2"})
    described = str(settings.describe())
    assert "t0ken" not in described and "pw" not in described
    assert settings.describe()["CNN_TOKEN"] == "***"
    with pytest.raises(SettingsError) as raised:
        _Example.from_env(env)
    assert "t0ken" not in str(raised.value) and "pw" not in str(raised.value)


def test_a_bad_redis_url_is_refused_without_echoing_its_password() -> None:
    with pytest.raises(SettingsError, match="CNN_REDIS_URL") as raised:
        Settings.from_env({"CNN_REDIS_URL": "http://user:hunter2@host/0"})
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://app:pw@[::1]:6379/0", "redis://app:***@[::1]:6379/0"),
        ("redis://redis:6379/0?password=pw&db=1", "redis://redis:6379/0?password=***&db=1"),
        ("rediss://u:pw@h/0?PASSWORD=pw", "rediss://u:***@h/0?PASSWORD=***"),
        ("redis://app@redis/0", "redis://app@redis/0"),
    ],
)
def test_redact_url_masks_every_password(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_settings_table_lists_every_variable_with_its_default() -> None:
    table = settings_table(_Example)
    assert "| `CNN_SIZE` | `3` | How many, a count. |" in table
    assert "| `NUMBA_CACHE_DIR` | unset | Alias. |" in table
    assert r"Where \| to go." in table  # a pipe in a description does not break the table


# --- the server's settings -----------------------------------------------------------------


def test_server_defaults_work_locally() -> None:
    settings = Settings.from_env({})
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.auth_token is None and not settings.tls_enabled


def test_server_reads_cnn_variables() -> None:
    settings = Settings.from_env(
        {
            "CNN_MODELS_DIR": "/m",
            "CNN_MAX_BATCH_SIZE": "8",
            "CNN_LOG_LEVEL": "debug",
            "CNN_AUTH_TOKEN": "",
        }
    )
    assert str(settings.models_dir) == "/m" and settings.max_batch_size == 8
    assert settings.log_level == "DEBUG" and settings.auth_token is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CNN_MAX_BATCH_SIZE": "0"}, "CNN_MAX_BATCH_SIZE"),
        ({"CNN_GRPC_ADDRESS": "nohost"}, "CNN_GRPC_ADDRESS"),
        ({"CNN_TLS_CERT": "/c.pem"}, "CNN_TLS_KEY"),
        ({"CNN_POLL_INTERVAL_S": "soon"}, "CNN_POLL_INTERVAL_S"),
        ({"CNN_MAX_INFLIGHT_BYTES": "2048"}, "at least CNN_MAX_MESSAGE_BYTES"),
    ],
)
def test_invalid_server_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)
