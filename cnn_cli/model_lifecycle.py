"""`cnn models policy|load|unload|rm`: which versions the server serves, over gRPC.

    cnn models policy digits                 # show the policy and each version's state
    cnn models policy digits latest 2        # serve the newest 2 versions
    cnn models policy digits specific 3 5    # serve versions 3 and 5
    cnn models policy digits all             # serve every version
    cnn models policy digits default         # back to the server's default (latest N)
    cnn models unload digits                 # serve nothing, keep the files
    cnn models load digits
    cnn models rm digits:3 [--force]         # delete version 3 from the repository

Each command returns once the server process that answered applied the change; the server's
other processes follow within its poll interval (CNN_POLL_INTERVAL_S).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from cnn_cli.connection import add_connection_options, client_from_args
from cnn_cli.errors import CliError
from cnn_cli.model_ref import parse_model_ref


def add_lifecycle_commands(sub: Any) -> None:
    """Register `policy`, `load`, `unload` and `rm` under `cnn models`."""
    p = sub.add_parser(
        "policy",
        help="show or set which versions of a model are served (latest N | specific V... | all "
        "| default)",
    )
    p.add_argument("name", metavar="MODEL", help="model name")
    p.add_argument(
        "policy",
        nargs="*",
        metavar="POLICY",
        help="`latest N`, `specific V [V ...]`, `all` or `default`; none: show the policy",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(func=run_policy)

    for action, text in (
        ("load", "load an unloaded model: its policy's versions serve again"),
        ("unload", "unload a model: it serves nothing, its versions stay in the repository"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("name", metavar="MODEL", help="model name")
        p.add_argument("--json", action="store_true", help="print JSON")
        add_connection_options(p)
        p.set_defaults(func=run_load if action == "load" else run_unload)

    p = sub.add_parser("rm", help="delete a model version from the server's repository")
    p.add_argument("name", metavar="MODEL:V", help="model name and version")
    p.add_argument(
        "--force",
        action="store_true",
        help="delete even when it is the only version the model serves or queued jobs "
        "fine-tune from it (init_from)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(func=run_rm)


def run_policy(args: argparse.Namespace) -> int:
    from cnn_client import VersionPolicy

    with client_from_args(args) as client:
        if not args.policy:
            status = client.get_version_policy(args.name)
        elif args.policy == ["default"]:
            status = client.set_version_policy(args.name, None)
        else:
            try:
                policy = VersionPolicy.parse(args.policy)
            except ValueError as exc:
                raise CliError(f"{exc} (or `default`)") from None
            status = client.set_version_policy(args.name, policy)
    return _print(status, args.json)


def run_load(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        return _print(client.load_model(args.name), args.json)


def run_unload(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        return _print(client.unload_model(args.name), args.json)


def run_rm(args: argparse.Namespace) -> int:
    name, version = parse_model_ref(args.name, 0)
    if not version:
        raise CliError(f"MODEL:V: name the version to delete, e.g. {name}:1")
    with client_from_args(args) as client:
        return _print(client.delete_version(name, version, force=args.force), args.json)


def _print(status: Any, as_json: bool) -> int:
    if as_json:
        doc = dataclasses.asdict(status)
        doc["policy"] = str(status.policy) if status.policy else None
        print(json.dumps(doc, indent=2))
        return 0
    print(f"model     {status.name} ({status.state.lower()})")
    print(f"policy    {status.policy or 'unknown'}")
    serving = ", ".join(map(str, status.versions)) or "none"
    default = f" (default {status.default_version})" if status.default_version else ""
    print(f"serving   {serving}{default}")
    for item in status.version_states:
        reason = f"  {item.reason}" if item.reason else ""
        print(f"  version {item.version:<5} {item.state:<12}{reason}")
    return 0
