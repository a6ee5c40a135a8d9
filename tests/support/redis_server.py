"""The real redis-server the tests use: the same code the demo uses (cnn_cli.redis_server)."""

from cnn_cli.redis_server import RedisServer

__all__ = ["RedisServer"]
