"""The hot-swap guarantee across the version lifecycle (issue #15): a real server of TWO serving
processes (the supervisor, CNN_SERVER_PROCESSES=2) and three load-client processes, each
sending Classify (own API) and ModelInfer (V2, tritonclient) calls for `digits` without a
version, back to back and WITHOUT client retries, while the test publishes a version, switches
the policy latest 1 -> all -> specific [1] -> latest 2, deletes a version that is not served,
deletes a served one (force) while another stays served, and unloads and loads another model.
Every intermediate state is waited for in ListModels and in V2 RepositoryIndex (fresh
connections, so either process may answer); the clients must count zero failures.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from cnn_client import CnnClient, CnnClientError, VersionPolicy
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import classifier_pb2_grpc as pb_grpc
from tests.server.models import TrainedArtifact, publish_copy
from tests.server.test_hot_swap import LoadClients
from tests.server.test_processes import start_supervisor
from tests.support.limits import COLD_START_TEST_TIMEOUT_S, EVENT_LIMIT_S
from tests.support.polling import wait_for

pytestmark = pytest.mark.timeout(COLD_START_TEST_TIMEOUT_S)

#: Answers each client must get from a version before the test moves on (steady load).
ANSWERS = 10
FRESH = [("grpc.use_local_subchannel_pool", 1)]  # a new connection per channel
PROCESSES = 2  # serving processes under the supervisor


def _serving(address: str, name: str) -> tuple[int, tuple[str, list[int]]]:
    """ListModels over a new connection: (answering process, (state, loaded versions))."""
    with grpc.insecure_channel(address, options=FRESH) as channel:
        reply, call = pb_grpc.ClassifierStub(channel).ListModels.with_call(
            pb.ListModelsRequest(), timeout=EVENT_LIMIT_S
        )
    pid = int(dict(call.trailing_metadata() or ())["cnn-server-pid"])
    for model in reply.models:
        if model.name == name:
            return pid, (model.state, list(model.versions))
    return pid, ("", [])


def _index(address: str, name: str) -> dict[int, tuple[str, str]]:
    """V2 RepositoryIndex over a new connection: version -> (state, reason) of `name`."""
    with tc.InferenceServerClient(address, channel_args=FRESH) as client:
        models = client.get_model_repository_index(as_json=True).get("models", [])
    return {
        int(m["version"]): (m.get("state", ""), m.get("reason", ""))
        for m in models
        if m["name"] == name
    }


def _expect(address: str, name: str, state: str, versions: list[int], index: dict) -> None:
    """Wait until BOTH serving processes list `name` as expected in ListModels (told apart by
    the `cnn-server-pid` trailer) and a fresh V2 RepositoryIndex shows `index`."""
    agreed: set[int] = set()

    def shown() -> bool:
        pid, seen = _serving(address, name)
        if seen == (state, versions) and _index(address, name) == index:
            agreed.add(pid)
        return len(agreed) == PROCESSES

    wait_for(
        shown, EVENT_LIMIT_S, interval=0.05, what=f"{name} {state} serving {versions}, {index}"
    )


def _unselected(policy: str) -> tuple[str, str]:
    return ("UNAVAILABLE", f"not selected by the version policy {policy}")


READY = ("READY", "")


def test_policy_changes_delete_and_unload_under_load_fail_no_request(
    tmp_path: Path,
    digits_artifact: TrainedArtifact,
    digits_artifact_v2: TrainedArtifact,
    redis_url: str,
) -> None:
    root = tmp_path / "models"
    publish_copy(root, "digits", digits_artifact.path)
    publish_copy(root, "digits", digits_artifact_v2.path)
    publish_copy(root, "other", digits_artifact.path)
    # Redis: a delete asks the job queue whether a job fine-tunes from the version.
    server = start_supervisor(tmp_path, root, {"CNN_REDIS_URL": redis_url})
    address = server.address
    clients = LoadClients(address, tmp_path, count=3)
    try:
        with CnnClient(address, timeout=EVENT_LIMIT_S) as api:
            # The default policy, latest CNN_MAX_VERSIONS = 2.
            _expect(address, "digits", "LOADED", [1, 2], {1: READY, 2: READY})
            wait_for(lambda: clients.all_answered_by(2, ANSWERS), EVENT_LIMIT_S, what="load on 2")

            status = api.set_version_policy("digits", VersionPolicy("latest", num_versions=1))
            assert status.versions == [2]  # this process applied it before answering
            _expect(address, "digits", "LOADED", [2], {1: _unselected("latest 1"), 2: READY})

            assert publish_copy(root, "digits", digits_artifact.path) == 3
            unselected = _unselected("latest 1")
            _expect(address, "digits", "LOADED", [3], {1: unselected, 2: unselected, 3: READY})
            wait_for(lambda: clients.all_answered_by(3, ANSWERS), EVENT_LIMIT_S, what="load on 3")

            api.set_version_policy("digits", VersionPolicy("all"))
            _expect(address, "digits", "LOADED", [1, 2, 3], {1: READY, 2: READY, 3: READY})

            api.set_version_policy("digits", VersionPolicy("specific", versions=(1,)))
            unselected = _unselected("specific [1]")
            _expect(address, "digits", "LOADED", [1], {1: READY, 2: unselected, 3: unselected})
            answered = max(r["answers"].get("1", 0) for r in clients.reports())
            wait_for(
                lambda: clients.all_answered_by(1, answered + ANSWERS),
                EVENT_LIMIT_S,
                what="load back on 1",
            )

            api.set_version_policy("digits", VersionPolicy("latest", num_versions=2))
            _expect(
                address,
                "digits",
                "LOADED",
                [2, 3],
                {1: _unselected("latest 2"), 2: READY, 3: READY},
            )

            api.delete_version("digits", 1)  # not served
            _expect(address, "digits", "LOADED", [2, 3], {2: READY, 3: READY})

            api.delete_version("digits", 3, force=True)  # the default; 2 stays served
            _expect(address, "digits", "LOADED", [2], {2: READY})
            answered = max(r["answers"].get("2", 0) for r in clients.reports())
            wait_for(
                lambda: clients.all_answered_by(2, answered + ANSWERS),
                EVENT_LIMIT_S,
                what="load on 2 after 3 was deleted",
            )
            with pytest.raises(CnnClientError) as refused:
                api.delete_version("digits", 2)  # now the only version served
            assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION

            # Another model, through tritonclient's model repository extension.
            with tc.InferenceServerClient(address) as triton:
                triton.unload_model("other")
                _expect(address, "other", "UNLOADED", [], {1: ("UNAVAILABLE", "unloaded")})
                try:
                    triton.get_model_metadata("other")
                except InferenceServerException as exc:
                    assert "is unloaded" in str(exc.message())
                else:
                    raise AssertionError("an unloaded model answered ModelMetadata")
                triton.load_model("other")
                _expect(address, "other", "LOADED", [1], {1: READY})
                assert triton.is_model_ready("other")
        results = clients.stop()
    finally:
        clients.kill()
        server.process.stop()
    totals = {v: sum(r["answers"].get(v, 0) for r in results) for v in ("1", "2", "3")}
    print(f"answers per version {totals}, failures {sum(r['failed'] for r in results)}")
    for result in results:
        assert result["done"]
        assert result["failed"] == 0, result["failures"]
        assert {"1", "2", "3"} <= set(result["answers"]), result
