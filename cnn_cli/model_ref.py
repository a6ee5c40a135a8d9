"""``MODEL[:V]`` on the command line: the one parser `cnn models show|export` share."""

from __future__ import annotations

from cnn_cli.errors import CliError


def parse_model_ref(ref: str, version: int) -> tuple[str, int]:
    """``MODEL`` or ``MODEL:V`` (and ``--version``) -> (name, version; 0 = the newest).

    Raises:
        CliError: V is not a positive integer, or disagrees with ``--version``.
    """
    if version < 0:
        raise CliError(f"--version must be >= 1 (or 0 for the newest), got {version}")
    name, colon, text = ref.partition(":")
    if not colon:
        return ref, version
    if not text.isdigit() or int(text) < 1:
        raise CliError(f"MODEL[:V]: the version after ':' must be >= 1, got {text!r} in {ref!r}")
    if version and version != int(text):
        raise CliError(f"{ref!r} and --version {version} name different versions")
    return name, int(text)
