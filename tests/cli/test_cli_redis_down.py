"""Redis stopped: `cnn classify` keeps working, training commands fail with one line
(UNAVAILABLE over gRPC, "Redis at URL unreachable" over Redis), and recover when Redis is back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnn_cli.redis_server import RedisServer
from cnn_cli.stack import LocalStack
from tests.cli.conftest import run_cnn
from tests.server.models import publish_copy, train_digits


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, RedisServer]]:
    """Our own redis-server (so the test can stop it) and a server serving `digits`."""
    root = tmp_path_factory.mktemp("redis-down-cli")
    redis_server = RedisServer(root / "redis").start()
    stack = LocalStack(root / "stack", workers=0, redis_url=redis_server.url)
    artifact = train_digits(root / "artifact" / "digits", epochs=1)
    publish_copy(stack.models_dir, "digits", artifact.path)
    try:
        with stack:
            yield stack, redis_server
    finally:
        redis_server.stop()


def test_redis_stopped_classify_works_and_training_fails_with_one_line(
    serving: tuple[LocalStack, RedisServer], digit_pngs: tuple[list[Path], list[int]]
) -> None:
    stack, redis_server = serving
    address = stack.grpc_address
    assert run_cnn("train", "list", "--address", address).returncode == 0
    redis_server.stop()
    try:
        classified = run_cnn("classify", str(digit_pngs[0][0]), "--json", "--address", address)
        assert classified.returncode == 0, classified.stderr
        assert json.loads(classified.stdout)["model"] == "digits"

        over_grpc = run_cnn("train", "list", "--address", address)
        assert over_grpc.returncode != 0
        assert "Traceback" not in over_grpc.stderr
        (line,) = over_grpc.stderr.strip().splitlines()
        assert "UNAVAILABLE" in line and f"Redis at {redis_server.url}" in line

        over_redis = run_cnn("train", "list", "--redis-url", redis_server.url)
        assert over_redis.returncode == 2
        (line,) = over_redis.stderr.strip().splitlines()
        assert f"job queue (Redis at {redis_server.url}) unreachable" in line
        assert "start redis-server" in line
    finally:
        redis_server.start()
    assert run_cnn("train", "list", "--address", address).returncode == 0
