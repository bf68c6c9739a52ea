from __future__ import annotations

from typing import Any

import pytest

from apiemulator import make_namespace, make_pod
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import (
    LogControl,
    NamespaceMeta,
    PodMeta,
    ShapeError,
    Shaper,
    owner_fields,
    reply_object,
)

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
    assert meta.container_ids == ("aa", "bb", "cc")


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


# -- extra_fields --
def owned(kind: str, name: str, **labels: str) -> dict[str, Any]:
    obj = pod_obj(labels=labels or None)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": "not-the-controller"},
        {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}]
    return obj


@pytest.mark.parametrize(("obj", "fields"), [
    (owned("ReplicaSet", "web-7d4b9c8f6d", **{"pod-template-hash": "7d4b9c8f6d"}),
     [("deployment", "web")]),
    (owned("ReplicaSet", "bare-rs"), []),  # a ReplicaSet of its own: no Deployment
    (owned("StatefulSet", "db"), [("statefulset", "db")]),
    (owned("DaemonSet", "agent"), [("daemonset", "agent")]),
    (owned("Job", "migrate"), [("job", "migrate")]),
    (owned("Job", "backup-28860480"), [("job", "backup-28860480"), ("cronjob", "backup")]),
    (pod_obj(), []),
])
def test_owner_from_the_controller_reference(obj: dict[str, Any],
                                             fields: list[tuple[str, str]]) -> None:
    assert owner_fields(obj["metadata"]) == fields


def test_extra_fields_only_when_asked_and_after_mmkubernetes_s() -> None:
    obj = owned("StatefulSet", "db")
    obj["spec"]["containers"].append({"name": "sidecar", "image": "registry.example/s:2"})
    plain = Shaper(True, "_", []).pod(obj, "web-1")
    assert plain.extra == () and plain.images is None
    assert "pod_ip" not in reply_object(REF, plain, None, "u")["$!"]["kubernetes"]

    meta = Shaper(True, "_", [], ["pod_ip", "container_image", "container_image_id",
                                  "owner"]).pod(obj, "web-1")
    k = reply_object(REF, meta, None, "u")["$!"]["kubernetes"]
    assert list(k)[-5:] == ["master_url", "pod_ip", "statefulset", "container_image",
                            "container_image_id"]
    assert k["pod_ip"] == "10.244.1.7"
    assert k["container_image"] == "registry.example/app:1.0"
    assert k["container_image_id"].startswith("registry.example/app@sha256:")
    # a container not running yet: its image from the spec, and no id
    side = reply_object(REF._replace(container="sidecar"), meta, None, "u")["$!"]["kubernetes"]
    assert side["container_image"] == "registry.example/s:2"
    assert "container_image_id" not in side

    only_id = Shaper(True, "_", [], ["container_image_id"]).pod(obj, "web-1")
    k = reply_object(REF, only_id, None, "u")["$!"]["kubernetes"]
    assert "container_image" not in k and "container_image_id" in k


LC = LogControl()


def controlled(annotations: dict[str, str], control: LogControl | None = LC,
               problems: list[str] | None = None) -> PodMeta:
    shaper = Shaper(True, "_", [], log_control=control,
                    problem=None if problems is None else problems.append)
    return shaper.pod(make_pod("shop", "web-1", {"app": "web"}, annotations,
                               containers=("app", "sidecar")), "web-1")


def test_log_control_marks_an_excluded_pod_for_every_line() -> None:
    pod = controlled({"kubemeta.io/exclude": "TRUE"})
    assert pod.extra == (("kubemeta_exclude", "true"),) and pod.excluded == ()
    ref = PodRef("shop", "web-1", "sidecar", None, None)
    assert reply_object(ref, pod, None, "u")["$!"]["kubernetes"]["kubemeta_exclude"] == "true"
    assert pod.annotations is None  # the annotation itself is not emitted (no match)


def test_log_control_marks_only_the_excluded_containers_lines() -> None:
    pod = controlled({"kubemeta.io/exclude-sidecar": "true", "kubemeta.io/exclude-app": "no"})
    assert pod.extra == () and pod.excluded == ("sidecar",)
    k = reply_object(PodRef("shop", "web-1", "sidecar", None, None), pod, None, "u")
    assert k["$!"]["kubernetes"]["kubemeta_exclude"] == "true"
    k = reply_object(PodRef("shop", "web-1", "app", None, None), pod, None, "u")
    assert "kubemeta_exclude" not in k["$!"]["kubernetes"]


def test_fluent_bits_annotation_counts_only_when_asked() -> None:
    ann = {"fluentbit.io/exclude": "true", "fluentbit.io/exclude-app": "true"}
    assert controlled(ann).extra == () and controlled(ann).excluded == ()
    fb = LogControl(fluentbit=True)
    assert controlled(ann, fb).extra == (("kubemeta_exclude", "true"),)
    assert controlled({"fluentbit.io/exclude-app": "true"}, fb).excluded == ("app",)


@pytest.mark.parametrize(("value", "mark"), [
    ("0.25", "250"), ("0", "0"), ("0.0004", "0"), (" 0.5 ", "500"), ("1", None), ("1.0", None)])
def test_a_sample_rate_becomes_lines_kept_in_a_thousand(value: str, mark: str | None) -> None:
    pod = controlled({"kubemeta.io/sample-rate": value})
    assert pod.extra == ((("kubemeta_sample", mark),) if mark is not None else ())


@pytest.mark.parametrize("value", ["lots", "1.5", "-0.1", "nan", "inf", ""])
def test_a_sample_rate_that_is_not_a_share_is_told_and_keeps_every_line(value: str) -> None:
    problems: list[str] = []
    pod = controlled({"kubemeta.io/sample-rate": value}, problems=problems)
    assert pod.extra == ()
    assert len(problems) == 1 and "pod web-1: annotation kubemeta.io/sample-rate" in problems[0]


def test_log_control_off_marks_nothing_and_names_are_configurable() -> None:
    ann = {"kubemeta.io/exclude": "true", "kubemeta.io/sample-rate": "0.1"}
    off = controlled(ann, None)
    assert off.extra == () and off.excluded == ()
    custom = LogControl(exclude="example.com/mute", sample="example.com/keep")
    assert controlled(ann, custom).extra == ()
    assert controlled({"example.com/mute-app": "true", "example.com/keep": "0.5"},
                      custom).excluded == ("app",)


def test_node_labels_are_the_matching_ones_de_dotted_and_emitted_after_the_extras() -> None:
    node = {"kind": "Node", "metadata": {"name": "node-1", "labels": {
        "topology.kubernetes.io/zone": "eu-1a", "node.kubernetes.io/instance-type": "m5.large",
        "kubernetes.io/hostname": "node-1", "team": "x"}}}
    shaper = Shaper(True, "_", [], ["owner"], node_label_match=[
        r"^topology\.kubernetes\.io/", r"^node\.kubernetes\.io/instance-type$"])
    labels = shaper.node_labels(node, "node-1")
    assert labels == {"topology_kubernetes_io/zone": "eu-1a",
                      "node_kubernetes_io/instance-type": "m5.large"}
    assert Shaper(True, "_", []).node_labels(node, "node-1") == {}  # no pattern, none
    with pytest.raises(ShapeError):
        shaper.node_labels({"kind": "Pod", "metadata": {"name": "node-1"}}, "node-1")
    pod = PodMeta("uid", {"app": "a"}, None, "node-1", (), (("deployment", "web"),),
                  node_labels=labels)
    k = reply_object(REF, pod, None, "u")["$!"]["kubernetes"]
    assert list(k)[-2:] == ["deployment", "node_labels"] and k["node_labels"] == labels
