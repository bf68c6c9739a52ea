from __future__ import annotations

from typing import Any

import pytest

from kubemeta.emulator import make_namespace, make_pod
from kubemeta.identify import PodRef
from kubemeta.schema import NamespaceMeta, PodMeta, ShapeError, Shaper, reply_object

REF = PodRef("shop", "web-1", "app", "c" * 64, None)


def pod_obj(**kw: Any) -> dict[str, Any]:
    obj = make_pod("shop", "web-1", **kw)
    obj["metadata"]["uid"] = "pod-uid"
    return obj


def test_de_dot_and_annotation_filter() -> None:
    s = Shaper(True, "_", [r"^prometheus\.io/", "team"])
    meta = s.pod(pod_obj(labels={"app.kubernetes.io/name": "web", "tier": "fe"},
                         annotations={"prometheus.io/port": "9102", "myteam": "a",
                                      "other.io/x": "y"}), "web-1")
    assert meta.labels == {"app_kubernetes_io/name": "web", "tier": "fe"}
    # pattern-major order, each key once; "/" is kept
    assert list((meta.annotations or {}).items()) == [("prometheus_io/port", "9102"),
                                                      ("myteam", "a")]
    assert meta.node_name == "node-1" and meta.uid == "pod-uid"


def test_no_annotation_match_means_no_annotations() -> None:
    meta = Shaper(True, "_", []).pod(pod_obj(annotations={"a": "b"}), "web-1")
    assert meta.annotations is None


def test_de_dot_off_and_multi_char_separator() -> None:
    assert Shaper(False, "_", []).pod(pod_obj(labels={"a.b": "1"}), "web-1").labels == {"a.b": "1"}
    assert Shaper(True, "--", []).pod(pod_obj(labels={"a.b.c": "1"}), "web-1").labels == \
        {"a--b--c": "1"}


def test_namespace_fields() -> None:
    obj = make_namespace("shop", {"team": "a"})
    obj["metadata"].update(uid="ns-uid", creationTimestamp="2026-01-01T00:00:00Z")
    ns = Shaper(True, "_", []).namespace(obj, "shop")
    assert ns == NamespaceMeta("ns-uid", {"kubernetes_io/metadata_name": "shop", "team": "a"},
                               None, "2026-01-01T00:00:00Z")


@pytest.mark.parametrize("obj", [
    None, [], "text", {"kind": "ConfigMap", "metadata": {"name": "web-1"}},
    {"kind": "Pod"}, {"kind": "Pod", "metadata": "x"},
    {"kind": "Pod", "metadata": {"name": "someone-else"}},
])
def test_nonsense_from_the_api_is_a_shape_error(obj: Any) -> None:
    with pytest.raises(ShapeError):
        Shaper(True, "_", []).pod(obj, "web-1")


def test_wrong_types_inside_metadata_are_dropped() -> None:
    obj = pod_obj()
    obj["metadata"]["labels"] = {"ok": "yes", "n": 5, "l": ["x"]}
    obj["metadata"]["uid"] = 42
    obj["spec"] = "broken"
    obj["status"]["containerStatuses"] = [{"containerID": 7}, "x", {"containerID": ""}]
    obj["status"]["initContainerStatuses"] = {"not": "a list"}
    meta = Shaper(True, "_", []).pod(obj, "web-1")
    assert meta == PodMeta(None, {"ok": "yes"}, None, None)


def test_container_ids_come_from_every_status_list_without_their_scheme() -> None:
    obj = pod_obj()
    obj["status"] = {"containerStatuses": [{"containerID": "containerd://aa"}],
                     "initContainerStatuses": [{"containerID": "cri-o://bb"}],
                     "ephemeralContainerStatuses": [{"containerID": "docker://cc"},
                                                    {"name": "not started yet"}]}
    meta = Shaper(True, "_", []).pod(obj, "web-1")
    assert meta.container_ids == frozenset({"aa", "bb", "cc"})


def test_reply_with_full_metadata_in_mmkubernetes_order() -> None:
    pod = PodMeta("pod-uid", {"app": "web"}, {"a": "b"}, "node-1")
    ns = NamespaceMeta("ns-uid", {"team": "x"}, None, "2026-01-01T00:00:00Z")
    out = reply_object(REF, pod, ns, "https://api:6443")
    assert list(out) == ["$!"]
    assert list(out["$!"]["kubernetes"]) == [
        "namespace_id", "namespace_labels", "creation_timestamp", "pod_id", "annotations",
        "labels", "host", "pod_name", "namespace_name", "container_name", "master_url"]
    assert out["$!"]["docker"] == {"container_id": "c" * 64}


def test_reply_with_file_name_fields_only() -> None:
    out = reply_object(REF, None, None, "https://api:6443")
    assert out == {"$!": {"kubernetes": {"pod_name": "web-1", "namespace_name": "shop",
                                         "container_name": "app",
                                         "master_url": "https://api:6443"},
                          "docker": {"container_id": "c" * 64}}}


def test_reply_never_contains_null() -> None:
    ref = PodRef("shop", "web-1", "app", None, None)
    out = reply_object(ref, PodMeta(None, None, None, None),
                       NamespaceMeta(None, None, None, None), "u")

    def walk(v: Any) -> None:
        assert v is not None
        if isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(out)
    assert out["$!"]["docker"] == {}
