"""Process helpers for tests: the same code the demo uses (cnn_cli.processes)."""

from cnn_cli.processes import ManagedProcess, ProcessError, free_port, python_module

__all__ = ["ManagedProcess", "ProcessError", "free_port", "python_module"]
