"""`jobs.settings.QueueSettings`: the queue's settings from `CNN_*` variables."""

from __future__ import annotations

import pytest

from core.settings import SettingsError
from jobs.settings import QueueSettings


def test_defaults_work_locally() -> None:
    settings = QueueSettings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.queues == ("training",)
    assert settings.queue == "training"
    assert (settings.job_timeout, settings.job_retries) == (3600, 2)
    assert settings.result_ttl == 7 * 24 * 3600


def test_queues_are_comma_separated_and_submit_uses_the_first() -> None:
    settings = QueueSettings.from_env({"CNN_QUEUES": " high, training ,,"})
    assert settings.queues == ("high", "training")
    assert settings.queue == "high"


def test_queues_may_be_overridden_in_code() -> None:
    assert QueueSettings.from_env({}, queues="a,b").queues == ("a", "b")
    assert QueueSettings.from_env({}, queues=("c",)).queues == ("c",)


def test_no_queue_is_an_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="CNN_QUEUES: at least one queue name"):
        QueueSettings.from_env({"CNN_QUEUES": " , "})


def test_a_bad_number_names_the_variable_and_limit() -> None:
    with pytest.raises(SettingsError, match=r"CNN_JOB_RETRIES: .*greater than or equal to 0"):
        QueueSettings.from_env({"CNN_JOB_RETRIES": "-1"})


def test_a_redis_url_without_scheme_is_refused_with_the_password_masked() -> None:
    with pytest.raises(SettingsError) as info:
        QueueSettings.from_env({"CNN_REDIS_URL": "http://u:s3cret@host:6379"})
    assert "CNN_REDIS_URL" in str(info.value)
    assert "s3cret" not in str(info.value)
