"""The stack's Redis as an outsider on its network sees it: no anonymous use.

Runs against the compose stack, whose Redis requires the ACL user `cnn` and a password
(docker-compose.yml). A local stack's Redis has no password (it listens on 127.0.0.1 for the
test session only), so there the test is skipped, saying why.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


def test_redis_refuses_a_client_without_credentials(stack: Stack) -> None:
    parts = urlsplit(stack.redis_url)
    if parts.password is None:
        pytest.skip("this stack's Redis has no password (local processes)")
    host = parts.hostname or ""
    anonymous = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or 6379}"))
    client = redis.Redis.from_url(anonymous, socket_timeout=30)
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        with pytest.raises(redis.AuthenticationError):
            client.rpush("rq:queue:training", "not-a-job")
    finally:
        client.close()
    with redis.Redis.from_url(stack.redis_url, socket_timeout=30) as service:
        assert service.ping()
        with pytest.raises(redis.ResponseError, match="no permissions"):
            service.config_get("*")  # the services' user has no admin commands
