"""`worker.cli`: the action parsers are exposed, and an unreachable Redis is one line."""

from __future__ import annotations

import argparse

import pytest

from tests.support.processes import free_port
from worker.cli import EXIT_USER_ERROR, TrainCommands, add_train_commands


def _parser() -> tuple[argparse.ArgumentParser, TrainCommands]:
    parser = argparse.ArgumentParser(prog="cnn")
    commands = add_train_commands(parser.add_subparsers(dest="command"), redis_hint="do X")
    return parser, commands


def test_the_train_group_exposes_each_action_parser() -> None:
    _, commands = _parser()
    assert set(commands.actions) == {"submit", "watch", "status", "list", "cancel"}
    assert commands.actions["status"].prog == "cnn train status"
    assert commands.parser.prog == "cnn train"


@pytest.mark.parametrize("action", [["list"], ["status", "some-job"], ["cancel", "some-job"]])
def test_unreachable_redis_is_a_one_line_user_error(
    action: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    parser, _ = _parser()
    args = parser.parse_args(["train", *action, "--redis-url", url])
    assert args.func(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"cnn train: cannot reach Redis at {url} (") and err.endswith("do X\n")
