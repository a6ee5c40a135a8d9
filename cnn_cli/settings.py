"""The `cnn` command's settings: one typed object read from `CNN_*` variables, like every process.

The job queue's settings (`jobs.settings.QueueSettings`: Redis URL, queues, the limits a
submitted job gets) are inherited, for `cnn train` over Redis; the fields below say how to reach
the gRPC server. Command-line options win over these (`cnn_cli.connection`). The README's CLI
table is `cnn settings` and a test keeps the two in step.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field

from jobs.settings import QueueSettings

DEFAULT_ADDRESS = "127.0.0.1:50051"


class CliSettings(QueueSettings):
    """Everything the `cnn` command reads from the environment.

    Each field ``foo_bar`` is read from the environment variable ``CNN_FOO_BAR``.
    """

    address: str | None = Field(
        None,
        description=f"gRPC server HOST:PORT (`--address`); unset = {DEFAULT_ADDRESS}. When set, "
        "`cnn train` goes through the server instead of Redis (`--redis-url` wins).",
    )
    token: str | None = Field(
        None,
        description="Bearer token for a server that requires one (`--token`).",
        json_schema_extra={"secret": True},
    )
    ca_cert: Path | None = Field(None, description="PEM CA to trust; implies TLS (`--ca-cert`).")
    client_cert: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (`--client-cert`)."
    )
    client_key: Path | None = Field(
        None, description="PEM key of CNN_CLIENT_CERT (`--client-key`)."
    )
    server_name: str | None = Field(
        None, description="TLS: name to expect in the server certificate (`--server-name`)."
    )
    timeout: float = Field(30.0, gt=0.0, description="Deadline per gRPC call, s (`--timeout`).")
    models_dir: Path | None = Field(
        None,
        description="Model repository readable here: `cnn train submit` over Redis checks a "
        "spec's init_from against it and pins the newest version (unset: init_from needs a "
        "version); `cnn inspect` looks there (unset: `models`).",
    )


@functools.cache
def cli_settings() -> CliSettings:
    """This process's settings, read from the environment once.

    Raises:
        SettingsError: a variable is invalid (the message names it).
    """
    return CliSettings.from_env()
