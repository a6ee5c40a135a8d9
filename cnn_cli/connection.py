"""How `cnn` commands reach the gRPC server: one set of options, one place that builds the client.

Every option has an environment variable so that scripts and containers configure it once:

| option | environment | meaning |
|---|---|---|
| `--address HOST:PORT` | `CNN_ADDRESS` | the server (default 127.0.0.1:50051) |
| `--token TOKEN` | `CNN_TOKEN` | bearer token, when the server requires one |
| `--tls` | | TLS with the system's root certificates |
| `--ca-cert PEM` | `CNN_CA_CERT` | TLS, trusting this CA (implies `--tls`) |
| `--client-cert PEM`, `--client-key PEM` | `CNN_CLIENT_CERT`, `CNN_CLIENT_KEY` | mutual TLS |
| `--server-name NAME` | `CNN_SERVER_NAME` | name checked against the server certificate |
| `--timeout S` | `CNN_TIMEOUT` | deadline per call, seconds (default 30) |
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cnn_cli.errors import CliError

if TYPE_CHECKING:
    from cnn_client import CnnClient

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def add_connection_options(
    parser: argparse.ArgumentParser, *, address_help: str | None = None, timeout: bool = True
) -> None:
    """Add --address, --token, TLS options and (unless `timeout` is False) --timeout."""
    group = parser.add_argument_group("server connection")
    group.add_argument(
        "--address",
        metavar="HOST:PORT",
        help=address_help or f"gRPC server (default: CNN_ADDRESS or {DEFAULT_ADDRESS})",
    )
    group.add_argument("--token", help="bearer token (default: CNN_TOKEN)")
    group.add_argument("--tls", action="store_true", help="use TLS (system root certificates)")
    group.add_argument("--ca-cert", type=Path, help="PEM CA to trust; implies --tls (CNN_CA_CERT)")
    group.add_argument("--client-cert", type=Path, help="PEM client certificate (mutual TLS)")
    group.add_argument("--client-key", type=Path, help="PEM key of --client-cert")
    group.add_argument("--server-name", help="TLS: name to expect in the server certificate")
    if timeout:
        group.add_argument(
            "--timeout",
            type=float,
            help=f"deadline per call in seconds (default: CNN_TIMEOUT or {DEFAULT_TIMEOUT_S:g})",
        )


def requested_address(args: argparse.Namespace) -> str | None:
    """The address given by --address or CNN_ADDRESS, None when neither is set."""
    return getattr(args, "address", None) or _env("CNN_ADDRESS")


def _check_address(address: str) -> str:
    if "://" in address or address.startswith("unix:"):
        return address  # a gRPC target URI: let gRPC judge it
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--address must be HOST:PORT (e.g. {DEFAULT_ADDRESS}), got {address!r}")
    return address


def _path(value: Path | None, env: str) -> Path | None:
    path = value if value is not None else (Path(e) if (e := _env(env)) else None)
    if path is not None and not path.is_file():
        flag = "--" + env.removeprefix("CNN_").lower().replace("_", "-")
        raise CliError(f"{path}: no such file (given by {flag} / {env})")
    return path


def client_from_args(args: argparse.Namespace) -> CnnClient:
    """A `CnnClient` configured from the command line and the environment.

    Raises:
        CliError: a malformed address, timeout or a missing certificate file.
    """
    from cnn_client import CnnClient, TlsOptions

    address = _check_address(requested_address(args) or DEFAULT_ADDRESS)
    timeout = getattr(args, "timeout", None)
    if timeout is None:
        raw = _env("CNN_TIMEOUT")
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            raise CliError(f"CNN_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if timeout <= 0:
        raise CliError(f"--timeout must be > 0 seconds, got {timeout}")
    ca = _path(args.ca_cert, "CNN_CA_CERT")
    cert = _path(args.client_cert, "CNN_CLIENT_CERT")
    key = _path(args.client_key, "CNN_CLIENT_KEY")
    if (cert is None) != (key is None):
        raise CliError("--client-cert and --client-key must be given together")
    server_name = args.server_name or _env("CNN_SERVER_NAME")
    tls = None
    if args.tls or ca is not None or cert is not None:
        tls = TlsOptions(root_ca=ca, client_cert=cert, client_key=key, server_name=server_name)
    return CnnClient(address, token=args.token or _env("CNN_TOKEN"), tls=tls, timeout=timeout)
