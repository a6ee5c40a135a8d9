"""The lifecycle RPCs of `cnn.v1.Models` and `cnn models policy|load|unload|rm` against a real
one-process server: refusals name the field and the rule, the state lands in the repository,
and a request pinned to a version that stopped serving is told why."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from cnn_client import CnnClient, CnnClientError, VersionPolicy
from jobs.status import JobStatus
from tests.cli.conftest import run_cnn
from tests.server.models import DIGITS_ARCHITECTURE, TrainedArtifact, publish_copy
from tests.server.serverproc import ServerProcess, start_server
from tests.support.limits import EVENT_LIMIT_S
from tests.support.ports import free_port


def _start(root: Path, workdir: Path, artifact: TrainedArtifact) -> ServerProcess:
    """digits versions 1 and 2 (both served by the default latest 2) and `other` version 1."""
    publish_copy(root, "digits", artifact.path)
    publish_copy(root, "digits", artifact.path)
    publish_copy(root, "other", artifact.path)
    return start_server(workdir, root, {"CNN_MAX_SERVED_VERSIONS": "4"})


@pytest.fixture()
def server(tmp_path: Path, digits_artifact: TrainedArtifact) -> Iterator[ServerProcess]:
    """A server of its own for a test that changes the lifecycle."""
    process = _start(tmp_path / "models", tmp_path / "server", digits_artifact)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def unchanged(
    tmp_path_factory: pytest.TempPathFactory, digits_artifact: TrainedArtifact
) -> Iterator[ServerProcess]:
    """A server shared by tests whose calls are all refused (nothing changes)."""
    process = _start(
        tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("server"), digits_artifact
    )
    try:
        yield process
    finally:
        process.stop()


def _refused(call, code: grpc.StatusCode, *needles: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(CnnClientError) as refused:
        call()
    assert refused.value.code == code, refused.value
    for needle in needles:
        assert needle in str(refused.value)
    return str(refused.value)


@pytest.mark.parametrize(
    ("policy", "code", "needles"),
    [
        (
            VersionPolicy("latest", num_versions=0),
            "INVALID_ARGUMENT",
            ["policy.latest.num_versions", "1..4"],
        ),
        (VersionPolicy("latest", num_versions=5), "INVALID_ARGUMENT", ["CNN_MAX_SERVED_VERSIONS"]),
        (
            VersionPolicy("specific"),
            "INVALID_ARGUMENT",
            ["policy.specific.versions", "at least one"],
        ),
        (
            VersionPolicy("specific", versions=(0,)),
            "INVALID_ARGUMENT",
            ["policy.specific.versions must be >= 1"],
        ),
        (
            VersionPolicy("specific", versions=(2, 9)),
            "NOT_FOUND",
            ["policy.specific.versions", "no version 9", "published: 1, 2"],
        ),
    ],
)
def test_invalid_policies_are_refused_naming_the_field(
    unchanged: ServerProcess, policy: VersionPolicy, code: str, needles: list[str]
) -> None:
    server = unchanged
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
        _refused(
            lambda: client.set_version_policy("digits", policy),
            grpc.StatusCode[code],
            *needles,
        )
        assert client.get_version_policy("digits").policy == VersionPolicy(
            "latest", num_versions=2, is_default=True
        )  # nothing changed
    assert not (server.models_dir / "digits" / "policy.json").exists()


def test_unknown_models_are_not_found(unchanged: ServerProcess) -> None:
    server = unchanged
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
        for call in (
            lambda: client.set_version_policy("nope", VersionPolicy("all")),
            lambda: client.get_version_policy("nope"),
            lambda: client.unload_model("nope"),
            lambda: client.load_model("nope"),
            lambda: client.delete_version("nope", 1),
        ):
            _refused(call, grpc.StatusCode.NOT_FOUND, "nope")
        _refused(
            lambda: client.delete_version("digits", 7), grpc.StatusCode.NOT_FOUND, "no version 7"
        )
        _refused(
            lambda: client.delete_version("digits", 0), grpc.StatusCode.INVALID_ARGUMENT, "version"
        )
        _refused(lambda: client.unload_model("../x"), grpc.StatusCode.INVALID_ARGUMENT, "model")


def test_the_policy_is_a_world_readable_file_and_answers_once_applied(
    server: ServerProcess,
) -> None:
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
        status = client.set_version_policy("digits", VersionPolicy("specific", versions=(1,)))
        assert (status.state, status.versions, status.default_version) == ("LOADED", [1], 1)
        assert [(s.version, s.state) for s in status.version_states] == [
            (1, "READY"),
            (2, "UNAVAILABLE"),
        ]
        path = server.models_dir / "digits" / "policy.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert json.loads(path.read_text()) == {
            "state": "loaded",
            "policy": {"kind": "specific", "num_versions": None, "versions": [1]},
        }
        # A request pinned to the version that stopped serving is told why.
        message = _refused(
            lambda: client.classify_batch(_x(), model="digits", version=2),
            grpc.StatusCode.NOT_FOUND,
            "not selected by the version policy specific [1]",
        )
        assert "loaded versions: 1" in message
        info = client.get_model("digits")
        assert info.version == 1 and info.policy == VersionPolicy("specific", versions=(1,))
        status = client.set_version_policy("digits", None)
        assert status.versions == [1, 2] and status.policy is not None and status.policy.is_default


def test_delete_refusals_and_force(server: ServerProcess) -> None:
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
        client.set_version_policy("digits", VersionPolicy("specific", versions=(2,)))
        _refused(
            lambda: client.delete_version("digits", 2, force=True),
            grpc.StatusCode.FAILED_PRECONDITION,
            "named by the model's version policy specific [2]",
        )
        client.set_version_policy("digits", VersionPolicy("latest", num_versions=1))
        _refused(
            lambda: client.delete_version("digits", 2),
            grpc.StatusCode.FAILED_PRECONDITION,
            "only version served",
            "force",
        )
        status = client.delete_version("digits", 2, force=True)
        assert status.versions == [1]  # the policy's next pick took over
        assert sorted(p.name for p in (server.models_dir / "digits").iterdir() if p.is_dir()) == [
            "1"
        ]  # no hidden trash left
        status = client.delete_version("digits", 1, force=True)  # the last one
        assert status.versions == [] and "digits" not in client.list_models()


def test_an_unloaded_model_is_listed_and_refuses_requests_saying_so(server: ServerProcess) -> None:
    with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
        status = client.unload_model("other")
        assert (status.state, status.versions) == ("UNLOADED", [])
        assert [(s.version, s.state, s.reason) for s in status.version_states] == [
            (1, "UNAVAILABLE", "unloaded")
        ]
        assert "other" not in client.list_models()
        assert {s.name: s.state for s in client.model_statuses()} == {
            "digits": "LOADED",
            "other": "UNLOADED",
        }
        _refused(
            lambda: client.classify_batch(_x(), model="other"),
            grpc.StatusCode.NOT_FOUND,
            "is unloaded",
            "cnn models load other",
        )
        assert client.unload_model("other").state == "UNLOADED"  # idempotent
        with tc.InferenceServerClient(server.address) as triton:
            with pytest.raises(InferenceServerException, match="parameters"):
                triton.load_model("other", config='{"max_batch_size": 8}')
            assert not triton.is_model_ready("other")  # the refused load changed nothing
        assert client.load_model("other").versions == [1]
        assert client.classify_batch(_x(), model="other").version == 1


def test_the_cli_sets_shows_and_lists_the_lifecycle(server: ServerProcess) -> None:
    address = ["--address", server.address]

    def cnn(*args: str) -> str:
        done = run_cnn(*args, *address, timeout=EVENT_LIMIT_S)
        assert done.returncode == 0, done.stderr
        return str(done.stdout)

    assert "latest 1" in cnn("models", "policy", "digits", "latest", "1")
    shown = cnn("models", "policy", "digits")
    assert "serving   2 (default 2)" in shown
    assert "not selected by the version policy latest 1" in shown
    assert "unloaded" in cnn("models", "unload", "other")
    listed = json.loads(cnn("models", "list", "--json"))
    assert {m["name"]: (m["state"], m["policy"], m["versions"]) for m in listed} == {
        "digits": ("LOADED", "latest 1", [2]),
        "other": ("UNLOADED", "latest 2 (default)", []),
    }
    assert "other" in cnn("models", "list")  # the table shows unloaded models too
    cnn("models", "load", "other")
    cnn("models", "policy", "digits", "specific", "1", "2")
    done = run_cnn("models", "rm", "digits:2", *address, timeout=EVENT_LIMIT_S)
    assert done.returncode != 0 and "change the policy first" in done.stderr
    cnn("models", "policy", "digits", "default")
    assert "serving   1" in cnn("models", "rm", "digits:2", "--force")
    bad = run_cnn("models", "policy", "digits", "newest", "2", *address, timeout=EVENT_LIMIT_S)
    assert bad.returncode == 2 and "latest N" in bad.stderr


# -- versions that queued jobs fine-tune from ----------------------------------------------------


def _fine_tune_spec(init_from: dict[str, object]) -> dict[str, object]:
    return {
        "name": "tuned",
        "dataset": {"name": "digits"},
        "architecture": DIGITS_ARCHITECTURE,
        "epochs": 1,
        "init_from": init_from,
    }


def _three_versions(tmp_path: Path, artifact: TrainedArtifact, redis_url: str) -> ServerProcess:
    """digits versions 1-3 (the default policy serves 2 and 3); no worker: jobs stay queued."""
    for _ in range(3):
        publish_copy(tmp_path / "models", "digits", artifact.path)
    env = {"CNN_REDIS_URL": redis_url, "CNN_DATA_DIR": str(tmp_path / "data")}
    return start_server(tmp_path / "server", tmp_path / "models", env)


def test_a_version_a_queued_job_fine_tunes_from_is_kept_until_cancelled_or_forced(
    tmp_path: Path, digits_artifact: TrainedArtifact, redis_url: str
) -> None:
    server = _three_versions(tmp_path, digits_artifact, redis_url)
    versions = server.models_dir / "digits"
    try:
        with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
            job = client.submit(_fine_tune_spec({"model": "digits", "version": 1}))
            _refused(
                lambda: client.delete_version("digits", 1),
                grpc.StatusCode.FAILED_PRECONDITION,
                "'digits' version 1 is in use by 1 queued or running job(s) as their init_from "
                f"(to fine-tune from): {job}",
                "pass force",
            )
            assert (versions / "1").is_dir()
            assert client.cancel(job) is JobStatus.CANCELLED
            assert client.delete_version("digits", 1).versions == [2, 3]  # no job uses it now

            # Without a version, Submit pins the newest: that version is in use.
            newest = client.submit(_fine_tune_spec({"model": "digits"}))
            _refused(
                lambda: client.delete_version("digits", 3),
                grpc.StatusCode.FAILED_PRECONDITION,
                newest,
            )
            assert client.delete_version("digits", 2).versions == [3]  # not the job's
            status = client.delete_version("digits", 3, force=True)
            assert status.versions == [] and not (versions / "3").exists()
            assert client.get_job(newest).status is JobStatus.QUEUED  # it will fail when run
    finally:
        server.stop()


def test_a_delete_is_unavailable_while_redis_cannot_tell_unless_forced(
    tmp_path: Path, digits_artifact: TrainedArtifact
) -> None:
    server = _three_versions(tmp_path, digits_artifact, f"redis://127.0.0.1:{free_port()}/0")
    try:
        with CnnClient(server.address, timeout=EVENT_LIMIT_S) as client:
            message = _refused(
                lambda: client.delete_version("digits", 1),
                grpc.StatusCode.UNAVAILABLE,
                "use model 'digits' version 1 as their init_from",
                "nothing was deleted",
                "Redis",
            )
            assert (server.models_dir / "digits" / "1").is_dir(), message
            # Refusals that need no Redis come first; force skips the question.
            _refused(lambda: client.delete_version("digits", 9), grpc.StatusCode.NOT_FOUND)
            assert client.delete_version("digits", 1, force=True).versions == [2, 3]
    finally:
        server.stop()


def _x():  # type: ignore[no-untyped-def]
    import numpy as np

    return (np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8)) % 17
