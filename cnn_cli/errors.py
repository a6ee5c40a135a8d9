"""The error every `cnn` sub-command raises for a mistake of the user's: its own module so that
the sub-commands and `cnn_cli.main` (which catches it) need not import each other."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
