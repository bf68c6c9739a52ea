"""mmkubernetes's output schema, and the trimmed metadata it is built from.

API objects are shaped once, when they arrive: only the fields we emit are
kept, annotations are filtered and keys de-dotted then, so the per-line path
only looks up ready-made values. The rules mirror rsyslog's mmkubernetes:
- annotations are kept only when a key matches one of ``annotation_match``
  (POSIX-extended regexes, searched anywhere in the key); with no pattern, no
  annotations at all;
- with de_dot, every "." in a label or annotation key becomes the separator;
- ``creation_timestamp`` is the namespace's; ``host`` is spec.nodeName.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubemeta.identify import PodRef

Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class PodMeta:
    uid: str | None
    labels: Labels | None
    annotations: Labels | None
    node_name: str | None
    # Not emitted: which containers are this pod's, so that the lines of a deleted
    # pod's containers find it after a new pod has taken its name.
    container_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NamespaceMeta:
    uid: str | None
    labels: Labels | None
    annotations: Labels | None
    creation_timestamp: str | None


class ShapeError(ValueError):
    """An API object that is not shaped like the kind we asked for."""


class Shaper:
    def __init__(self, de_dot: bool, separator: str, annotation_match: Iterable[str]) -> None:
        self._de_dot = de_dot
        self._sep = separator
        self._match = [re.compile(p) for p in annotation_match]

    def pod(self, obj: Any, name: str) -> PodMeta:
        md = _metadata(obj, "Pod", name)
        spec = obj.get("spec")
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        return PodMeta(
            uid=_str(md.get("uid")),
            labels=self._keys(_strmap(md, "labels")),
            annotations=self._keys(self._annotations(_strmap(md, "annotations"))),
            node_name=_str(node),
            container_ids=_container_ids(obj.get("status")),
        )

    def namespace(self, obj: Any, name: str) -> NamespaceMeta:
        md = _metadata(obj, "Namespace", name)
        return NamespaceMeta(
            uid=_str(md.get("uid")),
            labels=self._keys(_strmap(md, "labels")),
            annotations=self._keys(self._annotations(_strmap(md, "annotations"))),
            creation_timestamp=_str(md.get("creationTimestamp")),
        )

    def _annotations(self, ann: Labels | None) -> Labels | None:
        if ann is None:
            return None
        out: Labels = {}
        for rx in self._match:  # pattern-major order, as mmkubernetes iterates
            for k, v in ann.items():
                if k not in out and rx.search(k):
                    out[k] = v
        return out or None

    def _keys(self, m: Labels | None) -> Labels | None:
        if m is None or not self._de_dot:
            return m
        sep = self._sep
        return {k.replace(".", sep): v for k, v in m.items()}


def _metadata(obj: Any, kind: str, name: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ShapeError(f"expected a {kind} object, got {type(obj).__name__}")
    got_kind = obj.get("kind")
    if got_kind is not None and got_kind != kind:
        raise ShapeError(f"expected kind {kind}, got {str(got_kind)[:40]!r}")
    md = obj.get("metadata")
    if not isinstance(md, dict):
        raise ShapeError(f"{kind} has no metadata object")
    if md.get("name") is not None and md.get("name") != name:
        raise ShapeError(f"asked for {kind} {name!r}, got {str(md.get('name'))[:80]!r}")
    return md


_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")


def _container_ids(status: Any) -> frozenset[str]:
    """The runtime ids ("containerd://<id>" without the scheme) of every container."""
    if not isinstance(status, dict):
        return frozenset()
    out = set()
    for key in _STATUS_LISTS:
        items = status.get(key)
        for c in items if isinstance(items, list) else ():
            cid = c.get("containerID") if isinstance(c, dict) else None
            if isinstance(cid, str) and cid:
                out.add(cid.rpartition("://")[2])
    return frozenset(out)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _strmap(md: dict[str, Any], key: str) -> Labels | None:
    m = md.get(key)
    if not isinstance(m, dict):
        return None
    return {k: v for k, v in m.items() if isinstance(k, str) and isinstance(v, str)}


def kubernetes_fields(ref: PodRef, pod: PodMeta | None, ns: NamespaceMeta | None,
                      master_url: str) -> dict[str, Any]:
    """The $!kubernetes object, keys in mmkubernetes's order."""
    k: dict[str, Any] = {}
    if ns is not None:
        if ns.uid is not None:
            k["namespace_id"] = ns.uid
        if ns.labels is not None:
            k["namespace_labels"] = ns.labels
        if ns.annotations is not None:
            k["namespace_annotations"] = ns.annotations
        if ns.creation_timestamp is not None:
            k["creation_timestamp"] = ns.creation_timestamp
    if pod is not None:
        if pod.uid is not None:
            k["pod_id"] = pod.uid
        if pod.annotations is not None:
            k["annotations"] = pod.annotations
        if pod.labels is not None:
            k["labels"] = pod.labels
        if pod.node_name is not None:
            k["host"] = pod.node_name
    elif ref.pod_uid is not None:
        k["pod_id"] = ref.pod_uid
    k["pod_name"] = ref.pod
    k["namespace_name"] = ref.namespace
    k["container_name"] = ref.container
    k["master_url"] = master_url
    return k


def reply_object(ref: PodRef, pod: PodMeta | None, ns: NamespaceMeta | None,
                 master_url: str) -> dict[str, Any]:
    """The whole mmexternal reply: both objects complete, since rsyslog merges $! shallowly."""
    docker: dict[str, str] = {}
    if ref.container_id is not None:
        docker["container_id"] = ref.container_id
    return {"$!": {"kubernetes": kubernetes_fields(ref, pod, ns, master_url), "docker": docker}}
