"""Helpful errors: a wrong address, an unknown model or job, a bad spec print one line saying
what to do (exit status 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_cli.processes import free_port
from cnn_cli.stack import LocalStack
from tests.cli.conftest import run_cnn, spec, write_spec


def _one_line_error(done: object, *needles: str) -> str:
    """Assert exit status 2, empty stdout and a single stderr line containing `needles`."""
    returncode, stdout, stderr = done.returncode, done.stdout, done.stderr  # type: ignore[attr-defined]
    assert returncode == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "IMAGE"],
        ["models", "list"],
        ["models", "show", "digits"],
        ["train", "list"],
        ["train", "status", "some-job"],
    ],
)
def test_wrong_address_prints_one_line_and_exits_2(
    command: list[str], digit_pngs: tuple[list[Path], list[int]]
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    args = [str(digit_pngs[0][0]) if a == "IMAGE" else a for a in command]
    done = run_cnn(*args, "--address", address)
    _one_line_error(done, f"cannot reach a cnn-service server at {address}", "cnn serve")


def test_address_from_the_environment_is_used(digit_pngs: tuple[list[Path], list[int]]) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = run_cnn("classify", str(digit_pngs[0][0]), env={"CNN_ADDRESS": address})
    _one_line_error(done, address)


def test_malformed_address_is_a_usage_error() -> None:
    _one_line_error(run_cnn("models", "list", "--address", "localhost"), "HOST:PORT")


def test_unknown_model_names_the_loaded_ones_and_what_to_do(
    stack: LocalStack, digit_pngs: tuple[list[Path], list[int]]
) -> None:
    image = str(digit_pngs[0][0])
    done = run_cnn("classify", image, "--model", "nope", "--address", stack.grpc_address)
    _one_line_error(done, "model 'nope' is not loaded", "cnn models list")
    done = run_cnn("models", "show", "nope", "--address", stack.grpc_address)
    _one_line_error(done, "model 'nope' is not loaded", "cnn models list")


def test_missing_image_file(stack: LocalStack) -> None:
    done = run_cnn("classify", "no-such.png", "--address", stack.grpc_address)
    _one_line_error(done, "no-such.png: no such image file")


def test_invalid_spec_over_grpc_names_the_field(stack: LocalStack, tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec("bad", epochs=0, colour="blue"))
    done = run_cnn("train", "submit", str(path), "--address", stack.grpc_address)
    line = _one_line_error(done, "invalid training spec", "epochs", "colour")
    assert "colour: unknown field" in line


def test_spec_file_problems(stack: LocalStack, tmp_path: Path) -> None:
    done = run_cnn("train", "submit", str(tmp_path / "nope.json"), "--address", stack.grpc_address)
    _one_line_error(done, "not found")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    done = run_cnn("train", "submit", str(broken), "--address", stack.grpc_address)
    _one_line_error(done, "not valid JSON")


def test_unknown_job_over_grpc(stack: LocalStack) -> None:
    done = run_cnn("train", "status", "no-such-job", "--address", stack.grpc_address)
    _one_line_error(done, "no-such-job", "not found")


def test_address_and_redis_url_together_are_refused(stack: LocalStack) -> None:
    done = run_cnn("train", "list", "--address", stack.grpc_address, "--redis-url", stack.redis_url)
    _one_line_error(done, "not both")


def test_queue_option_needs_redis(stack: LocalStack, tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec("queued"))
    done = run_cnn("train", "submit", str(path), "--queue", "x", "--address", stack.grpc_address)
    _one_line_error(done, "--queue applies to Redis only")
