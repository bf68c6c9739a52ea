"""A reply assembled from parts serialized ahead of time, pure.

The $!kubernetes object is the namespace's members, the pod's, the line's own
(names from the file name, master_url), then the pod's extras and the
container's own members. The namespace's and the pod's parts do not depend on the
line, so a leader serializes them once and its followers splice them into each
reply as bytes (see sharedview): no follower decodes a pod. A JSON object's
bytes are its members' bytes joined by commas, so ``splice`` gives exactly the
bytes of ``dumps(reply_object(...))``, which the tests hold it to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubemeta.model.identify import PodRef
from kubemeta.model.schema import (
    NamespaceMeta,
    PodMeta,
    container_fields,
    containers,
    docker_fields,
    extra_fields,
    line_fields,
    ns_fields,
    pod_fields,
    same_pod,
)

Dumps = Callable[[Any], bytes]

_HEAD = b'{"$!":{"kubernetes":{'
_MIDDLE = b'},"docker":{'
_TAIL = b"}}}\n"


@dataclass(frozen=True, slots=True)
class PodParts:
    """A pod's serialized members: ``own`` (pod_id, annotations, labels, host),
    ``extra`` (extra_fields, log control's pod-level marks), and each
    container's own members (its image, its exclusion) by name."""

    uid: str | None
    own: bytes
    extra: bytes
    images: Mapping[str, bytes]


def _members(dumps: Dumps, d: dict[str, Any]) -> bytes:
    return dumps(d)[1:-1] if d else b""


def ns_part(ns: NamespaceMeta, dumps: Dumps) -> bytes:
    return _members(dumps, ns_fields(ns))


def pod_parts(pod: PodMeta, dumps: Dumps) -> PodParts:
    images = {name: _members(dumps, container_fields(pod, name)) for name in containers(pod)}
    return PodParts(pod.uid, _members(dumps, pod_fields(pod)), _members(dumps, extra_fields(pod)),
                    {name: m for name, m in images.items() if m})


def splice(ref: PodRef, pod: PodParts | None, ns: bytes | None, master_url: str,
           dumps: Dumps) -> bytes:
    """The whole mmexternal reply for a line of ``ref``'s container."""
    if pod is not None and not same_pod(ref, pod.uid):
        pod = None
    parts = [ns or b"", pod.own if pod is not None else b"",
             _members(dumps, line_fields(ref, pod is not None, master_url))]
    if pod is not None:
        parts.append(pod.extra)
        parts.append(pod.images.get(ref.container, b""))
    return (_HEAD + b",".join([p for p in parts if p]) + _MIDDLE
            + _members(dumps, docker_fields(ref)) + _TAIL)
