"""Wire layout of the version lifecycle: `VersionPolicy`, `VersionState`, `ModelSummary`
(proto/cnn/v1/classifier.proto) <-> `core.lifecycle` and the registry's view.

Every decoding error names the request field and the limit.
"""

from __future__ import annotations

from core.lifecycle import UNLOADED, VersionPolicy
from proto.cnn.v1 import classifier_pb2 as pb
from proto.cnn.v1 import models_pb2
from server.errors import InvalidInput
from server.registry import ModelPolicyView, ModelRegistry


def decode_policy(
    request: models_pb2.SetVersionPolicyRequest, max_served: int
) -> VersionPolicy | None:
    """The policy a SetVersionPolicy request asks for (None: back to the server default).

    Raises:
        InvalidInput: naming the field: no policy, N < 1, an empty or too long list, a
            version < 1, more than `max_served` (CNN_MAX_SERVED_VERSIONS) versions.
    """
    choice = request.policy.WhichOneof("policy_choice")
    if request.use_default:
        if choice is not None:
            raise InvalidInput("give either policy or use_default, not both")
        return None
    if choice == "latest":
        n = request.policy.latest.num_versions
        if not 1 <= n <= max_served:
            raise InvalidInput(
                f"policy.latest.num_versions must be 1..{max_served} "
                f"(CNN_MAX_SERVED_VERSIONS), got {n}"
            )
        return VersionPolicy.latest(n)
    if choice == "specific":
        versions = sorted(set(request.policy.specific.versions))
        if not versions:
            raise InvalidInput("policy.specific.versions must name at least one version")
        if versions[0] < 1:
            raise InvalidInput(f"policy.specific.versions must be >= 1, got {versions[0]}")
        if len(versions) > max_served:
            raise InvalidInput(
                f"policy.specific.versions names {len(versions)} versions, over "
                f"CNN_MAX_SERVED_VERSIONS={max_served}"
            )
        return VersionPolicy.specific(versions)
    if choice == "all":
        return VersionPolicy.all()
    raise InvalidInput("policy: set one of latest, specific or all (or use_default)")


def encode_policy(view: ModelPolicyView | None) -> pb.VersionPolicy:
    if view is None:
        return pb.VersionPolicy()
    policy = view.policy
    out = pb.VersionPolicy(is_default=view.is_default)
    if policy.kind == "latest":
        out.latest.num_versions = policy.num_versions or 0
    elif policy.kind == "specific":
        out.specific.versions.extend(policy.versions)
    else:
        out.all.SetInParent()
    return out


def encode_summary(registry: ModelRegistry, name: str) -> pb.ModelSummary:
    """What this process serves of `name` and why (ListModels, the lifecycle RPCs' answer)."""
    versions = registry.versions(name)
    view = registry.policy(name)
    return pb.ModelSummary(
        name=name,
        versions=versions,
        default_version=max(versions, default=0),
        state="UNLOADED" if view is not None and view.state == UNLOADED else "LOADED",
        policy=encode_policy(view),
        version_states=encode_version_states(registry, name),
    )


def encode_version_states(registry: ModelRegistry, name: str) -> list[pb.VersionState]:
    return [
        pb.VersionState(version=s.version, state=s.state, reason=s.reason)
        for s in registry.index(name)
    ]
