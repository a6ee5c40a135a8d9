"""How `cnn` commands reach the gRPC server: one set of options, one place that builds the client.

Every option falls back to a field of `cnn_cli.settings.CliSettings` (``--address`` to
``CNN_ADDRESS``, ``--token`` to ``CNN_TOKEN``, ...), so scripts and containers configure it once;
the README's CLI settings table lists them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cnn_cli.errors import CliError
from cnn_cli.settings import DEFAULT_ADDRESS, cli_settings

if TYPE_CHECKING:
    from cnn_client import CnnClient


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
            help="deadline per call in seconds (default: CNN_TIMEOUT or 30)",
        )


def requested_address(args: argparse.Namespace) -> str | None:
    """The address given by --address or CNN_ADDRESS, None when neither is set."""
    return getattr(args, "address", None) or cli_settings().address


def _check_address(address: str) -> str:
    if "://" in address or address.startswith("unix:"):
        return address  # a gRPC target URI: let gRPC judge it
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--address must be HOST:PORT (e.g. {DEFAULT_ADDRESS}), got {address!r}")
    return address


def _path(value: Path | None, setting: Path | None, env: str) -> Path | None:
    path = value if value is not None else setting
    if path is not None and not path.is_file():
        flag = "--" + env.removeprefix("CNN_").lower().replace("_", "-")
        raise CliError(f"{path}: no such file (given by {flag} / {env})")
    return path


def client_from_args(args: argparse.Namespace) -> CnnClient:
    """A `CnnClient` configured from the command line, then `CliSettings`.

    Raises:
        CliError: a malformed address or timeout, or a missing certificate file.
    """
    from cnn_client import CnnClient, TlsOptions

    settings = cli_settings()
    address = _check_address(requested_address(args) or DEFAULT_ADDRESS)
    timeout = getattr(args, "timeout", None)
    if timeout is None:
        timeout = settings.timeout
    if timeout <= 0:
        raise CliError(f"--timeout must be > 0 seconds, got {timeout}")
    ca = _path(args.ca_cert, settings.ca_cert, "CNN_CA_CERT")
    cert = _path(args.client_cert, settings.client_cert, "CNN_CLIENT_CERT")
    key = _path(args.client_key, settings.client_key, "CNN_CLIENT_KEY")
    if (cert is None) != (key is None):
        raise CliError("--client-cert and --client-key must be given together")
    server_name = args.server_name or settings.server_name
    tls = None
    if args.tls or ca is not None or cert is not None:
        tls = TlsOptions(root_ca=ca, client_cert=cert, client_key=key, server_name=server_name)
    return CnnClient(address, token=args.token or settings.token, tls=tls, timeout=timeout)
