"""The one codec for pod and namespace metadata, pure.

- Documents: JSON-ready values (``pod_doc``, ``ns_doc``) and back
  (``pod_meta``, ``ns_meta``, which check every type). The warm-start snapshot
  and the leader's answers to its followers carry these.
- Reply members: the shared view keeps a pod as the members of its reply
  (replyparts), which followers splice without decoding. ``pod_from_members``
  and ``ns_from_members`` read them back, for a follower that takes the lead:
  the names of schema's ``pod_fields`` and ``ns_fields``, inverted here only.

Bad input raises ValueError or TypeError, and nothing else.
"""

from __future__ import annotations

from typing import Any

from kubemeta.model.schema import EXCLUDE, NamespaceMeta, PodMeta, shared_strings


def pod_doc(meta: PodMeta, key: tuple[str, str] | None = None) -> dict[str, Any]:
    """A pod's metadata as JSON-ready values (``pod_meta`` reads it back)."""
    out: dict[str, Any] = {"uid": meta.uid, "labels": meta.labels,
                           "annotations": meta.annotations, "node": meta.node_name,
                           "cids": sorted(meta.container_ids)}
    if meta.extra:
        out["extra"] = [list(kv) for kv in meta.extra]
    if meta.images is not None:
        out["images"] = {name: list(v) for name, v in meta.images.items()}
    if meta.excluded:
        out["excluded"] = list(meta.excluded)
    if meta.node_labels is not None:
        out["node_labels"] = meta.node_labels
    if key is not None:
        out["ns"], out["name"] = key
    return out


def pod_meta(p: dict[str, Any]) -> PodMeta:
    """Raises ValueError or TypeError when ``p`` is not a ``pod_doc``."""
    cids = p.get("cids") or []
    if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids):
        raise ValueError("cids")
    extra = p.get("extra") or []
    if not isinstance(extra, list) or not all(
            isinstance(kv, list) and len(kv) == 2 and all(isinstance(x, str) for x in kv)
            for kv in extra):
        raise ValueError("extra")
    images = p.get("images")
    if images is not None and not (isinstance(images, dict) and all(
            isinstance(v, list) and len(v) == 2 and all(x is None or isinstance(x, str)
                                                        for x in v)
            for v in images.values())):
        raise ValueError("images")
    excluded = p.get("excluded") or []
    if not isinstance(excluded, list) or not all(isinstance(c, str) for c in excluded):
        raise ValueError("excluded")
    return PodMeta(_s(p, "uid"), _m(p, "labels"), _m(p, "annotations"), _s(p, "node"),
                   tuple(sorted(cids)), tuple((k, v) for k, v in extra),
                   None if images is None else {k: (v[0], v[1]) for k, v in images.items()},
                   tuple(sorted(excluded)), _m(p, "node_labels"))


def ns_doc(m: NamespaceMeta, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": m.uid, "labels": m.labels, "annotations": m.annotations,
                           "created": m.creation_timestamp}
    if name is not None:
        out["name"] = name
    return out


def ns_meta(n: dict[str, Any]) -> NamespaceMeta:
    """Raises ValueError or TypeError when ``n`` is not an ``ns_doc``."""
    return NamespaceMeta(_s(n, "uid"), _m(n, "labels"), _m(n, "annotations"), _s(n, "created"))


def _s(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise ValueError(key)
    return v


def _m(d: dict[str, Any], key: str) -> dict[str, str] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                          for k, x in v.items()):
        raise ValueError(key)
    return shared_strings(v)


def pod_from_members(own: dict[str, Any], extra: dict[str, Any], cids: Any,
                     containers: dict[str, dict[str, Any]]) -> PodMeta:
    """A pod from its reply members (schema.pod_fields, the extra fields, and each
    container's schema.container_fields), and its container ids."""
    extra = dict(extra)
    node_labels = extra.pop("node_labels", None)
    return pod_meta({
        "uid": own.get("pod_id"), "labels": own.get("labels"),
        "annotations": own.get("annotations"), "node": own.get("host"), "cids": cids,
        "extra": [[k, v] for k, v in extra.items()], "node_labels": node_labels,
        "images": {name: [d.get("container_image"), d.get("container_image_id")]
                   for name, d in containers.items()
                   if "container_image" in d or "container_image_id" in d} or None,
        "excluded": [name for name, d in containers.items() if d.get(EXCLUDE) == "true"]})


def ns_from_members(d: dict[str, Any]) -> NamespaceMeta:
    """A namespace from its reply members (schema.ns_fields)."""
    return ns_meta({"uid": d.get("namespace_id"), "labels": d.get("namespace_labels"),
                    "annotations": d.get("namespace_annotations"),
                    "created": d.get("creation_timestamp")})
