"""Session-wide fixtures: real services, never fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer

# Numba compiles into the per-machine cache (core/kernels/compile_cache.py), shared with the
# processes the tests start and with every other clone of the same kernels: a fresh clone's run
# (CI) reuses what an earlier run on the machine compiled. NUMBA_CACHE_DIR, if set, moves it.

#: Tests that import proto.inference, which cannot share a process with tritonclient: a run
#: collects them only when they are named on its command line (scripts/test.sh runs them
#: in a second pytest process).
OWN_PROCESS_DIR = Path(__file__).resolve().parent / "server_v2codec"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path != OWN_PROCESS_DIR:
        return None
    named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
    if any(path == OWN_PROCESS_DIR or OWN_PROCESS_DIR in path.parents for path in named):
        return None
    return True


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free 127.0.0.1 port for the whole test session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's Redis, flushed before each test so tests do not see each other."""
    client = redis_server.client()
    client.flushall()
    client.close()
    yield redis_server.url
