"""Version lifecycle as the client sees it: plain dataclasses and their protobuf codec.

A model's state ("LOADED" / "UNLOADED"), its version policy (`latest N`, `specific [v...]`,
`all`) and the state of each version, as one server process applied them (see
proto/cnn/v1/models.proto on how other processes follow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from proto.cnn.v1 import classifier_pb2

POLICY_KINDS = ("latest", "specific", "all")


@dataclass(frozen=True)
class VersionPolicy:
    """Which published versions are served: `kind` "latest" (the newest `num_versions`),
    "specific" (`versions`) or "all"."""

    kind: str
    num_versions: int = 0
    versions: tuple[int, ...] = ()
    #: the server's default (latest CNN_MAX_VERSIONS): the model has no policy of its own
    is_default: bool = False

    def __str__(self) -> str:
        if self.kind == "latest":
            text = f"latest {self.num_versions}"
        elif self.kind == "specific":
            text = "specific " + " ".join(map(str, self.versions))
        else:
            text = self.kind
        return text + (" (default)" if self.is_default else "")

    @classmethod
    def parse(cls, words: Sequence[str]) -> VersionPolicy:
        """`["latest", "2"]`, `["specific", "3", "5"]` or `["all"]`.

        Raises:
            ValueError: anything else (the message shows the accepted forms).
        """
        usage = "expected `latest N`, `specific V [V ...]` or `all`"
        if not words or words[0] not in POLICY_KINDS:
            raise ValueError(f"unknown version policy {' '.join(words)!r}: {usage}")
        kind, numbers = words[0], words[1:]
        if not all(n.isdigit() for n in numbers):
            raise ValueError(f"version policy {' '.join(words)!r}: numbers only after {kind}")
        values = [int(n) for n in numbers]
        if kind == "latest" and len(values) == 1:
            return cls("latest", num_versions=values[0])
        if kind == "specific" and values:
            return cls("specific", versions=tuple(values))
        if kind == "all" and not values:
            return cls("all")
        raise ValueError(f"version policy {' '.join(words)!r}: {usage}")

    def message(self) -> classifier_pb2.VersionPolicy:
        out = classifier_pb2.VersionPolicy()
        if self.kind == "latest":
            out.latest.num_versions = self.num_versions
        elif self.kind == "specific":
            out.specific.versions.extend(self.versions)
        elif self.kind == "all":
            out.all.SetInParent()
        else:
            raise ValueError(f"unknown version policy kind {self.kind!r}: use {POLICY_KINDS}")
        return out


@dataclass(frozen=True)
class VersionStatus:
    """One published version: "READY", "LOADING" or "UNAVAILABLE", and why it is not ready."""

    version: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class ModelStatus:
    """A model of the server's repository: what it serves and why."""

    name: str
    #: "LOADED" or "UNLOADED"
    state: str
    policy: VersionPolicy | None
    #: loaded versions, ascending (empty when unloaded)
    versions: list[int] = field(default_factory=list)
    #: the version requests without a version get (0: none loaded)
    default_version: int = 0
    version_states: list[VersionStatus] = field(default_factory=list)


def decode_policy(message: classifier_pb2.VersionPolicy) -> VersionPolicy | None:
    kind = message.WhichOneof("policy_choice")
    if kind is None:
        return None
    return VersionPolicy(
        kind,
        num_versions=message.latest.num_versions,
        versions=tuple(message.specific.versions),
        is_default=message.is_default,
    )


def decode_status(message: classifier_pb2.ModelSummary) -> ModelStatus:
    return ModelStatus(
        name=message.name,
        state=message.state or "LOADED",
        policy=decode_policy(message.policy),
        versions=list(message.versions),
        default_version=message.default_version,
        version_states=[
            VersionStatus(s.version, s.state, s.reason) for s in message.version_states
        ],
    )
