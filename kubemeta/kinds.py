"""The names kubemeta's parts share: what kind of object, which role a helper
plays, where metadata comes from. StrEnums, so they compare equal to the
strings that config files and wire messages carry."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """A cached object's kind, as the store's keys and the leader's messages name it."""

    POD = "pod"
    NS = "ns"
    NODE = "node"  # watched for its labels alone (extra_fields: node_labels), not cached


class Role(StrEnum):
    """The part a helper plays among its node's helpers (see roles)."""

    ALONE = "alone"
    LEADER = "leader"
    FOLLOWER = "follower"


class Mode(StrEnum):
    """Where pod metadata comes from: ``source`` in the config."""

    GET = "get"
    WATCH = "watch"
    KUBELET = "kubelet"
