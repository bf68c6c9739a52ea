"""The one metadata codec: documents and reply members both come back as the
metadata they were made from."""

from __future__ import annotations

from typing import Any

import pytest

from kubemeta import jsonlib
from kubemeta.model import codec
from kubemeta.model.replyparts import ns_part, pod_parts
from kubemeta.model.schema import NamespaceMeta, PodMeta

FULL = PodMeta("uid-1", {"app": "web"}, {"note": "x"}, "node-1", ("a" * 64, "b" * 64),
               (("pod_ip", "10.0.0.7"), ("owner", "web-7f")),
               {"app": ("nginx:1.27", "sha256:0f"), "side": (None, "sha256:1e")})
BARE = PodMeta(None, None, None, None)
CONTROLLED = PodMeta("uid-2", {"app": "noisy"}, None, "node-1", (),
                     (("kubemeta_exclude", "true"),), {"app": ("nginx:1.27", None)},
                     ("app", "sidecar"), {"topology_kubernetes_io/zone": "eu-1a"})
NS = NamespaceMeta("ns-uid", {"team": "a"}, {"owner": "b"}, "2026-01-01T00:00:00Z")
NS_BARE = NamespaceMeta(None, None, None, None)


def members(b: bytes) -> Any:
    return jsonlib.loads(b"{" + b + b"}")


@pytest.mark.parametrize("pod", [FULL, BARE, CONTROLLED], ids=["full", "bare", "log-control"])
def test_a_pod_document_reads_back_as_the_pod(pod: PodMeta) -> None:
    doc = jsonlib.loads(jsonlib.dumps(codec.pod_doc(pod, ("shop", "web-1"))))
    assert codec.pod_meta(doc) == pod


@pytest.mark.parametrize("ns", [NS, NS_BARE], ids=["full", "bare"])
def test_a_namespace_document_reads_back_as_the_namespace(ns: NamespaceMeta) -> None:
    assert codec.ns_meta(jsonlib.loads(jsonlib.dumps(codec.ns_doc(ns, "shop")))) == ns


@pytest.mark.parametrize("pod", [FULL, BARE, CONTROLLED], ids=["full", "bare", "log-control"])
def test_reply_members_read_back_as_the_pod(pod: PodMeta) -> None:
    parts = pod_parts(pod, jsonlib.dumps)
    images = {name: members(m) for name, m in parts.images.items()}
    got = codec.pod_from_members(members(parts.own), members(parts.extra),
                                 list(pod.container_ids), images)
    # An image with neither name nor id has no members: nothing to read back.
    assert got == pod


def test_reply_members_read_back_as_the_namespace() -> None:
    assert codec.ns_from_members(members(ns_part(NS, jsonlib.dumps))) == NS


@pytest.mark.parametrize("doc", [
    {"uid": 7}, {"labels": {"a": 1}}, {"cids": "abc"}, {"extra": [["k"]]},
    {"images": {"app": ["x"]}}, {"annotations": ["a"]},
], ids=["uid", "labels", "cids", "extra", "images", "annotations"])
def test_a_malformed_document_is_a_value_error(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        codec.pod_meta(doc)
