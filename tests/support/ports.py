"""Free loopback ports for test services (bind 127.0.0.1 only)."""

from cnn_cli.processes import free_port

__all__ = ["free_port"]
