"""mmkubernetes's output schema, and the trimmed metadata it is built from.

API objects are shaped once, when they arrive: only the fields we emit are
kept, annotations are filtered and keys de-dotted then, so the per-line path
only looks up ready-made values. The rules mirror rsyslog's mmkubernetes:
- annotations are kept only when a key matches one of ``annotation_match``
  (POSIX-extended regexes, searched anywhere in the key); with no pattern, no
  annotations at all;
- with de_dot, every "." in a label or annotation key becomes the separator;
- ``creation_timestamp`` is the namespace's; ``host`` is spec.nodeName.

With log control (off by default), a pod's annotations may also mark its lines:
``kubemeta_exclude`` ("true": drop them) and ``kubemeta_sample`` (keep about
that many in 1000), members of $!kubernetes that the shipped snippets act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from sys import intern
from typing import Any

from kubemeta.errors import ShapeError
from kubemeta.model.identify import PodRef

Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class PodMeta:
    uid: str | None
    labels: Labels | None
    annotations: Labels | None
    node_name: str | None
    # Not emitted: which containers are this pod's, so that the lines of a deleted
    # pod's containers find it after a new pod has taken its name.
    container_ids: tuple[str, ...] = ()  # sorted; a tuple costs a fifth of a frozenset
    # extra_fields, only those asked for: pod-level ones in output order, and each
    # container's (image, image id).
    extra: tuple[tuple[str, str], ...] = ()
    images: dict[str, tuple[str | None, str | None]] | None = None
    # log control: the containers whose lines are dropped (sorted; none when the
    # whole pod's are, which is a member of ``extra``).
    excluded: tuple[str, ...] = ()
    # extra_fields' node_labels: its node's labels (node_label_match), stamped by
    # the store on the pods of the node it watches.
    node_labels: Labels | None = None


@dataclass(frozen=True, slots=True)
class NamespaceMeta:
    uid: str | None
    labels: Labels | None
    annotations: Labels | None
    creation_timestamp: str | None


EXTRA_FIELDS = ("pod_ip", "container_image", "container_image_id", "owner", "node_labels")
OWNER_KEYS = ("deployment", "statefulset", "daemonset", "job", "cronjob")
EXCLUDE = "kubemeta_exclude"
SAMPLE = "kubemeta_sample"
FLUENTBIT_EXCLUDE = "fluentbit.io/exclude"


@dataclass(frozen=True)
class LogControl:
    """Which pod annotations drop or sample a pod's lines.

    ``exclude`` "true" drops all the pod's lines, ``exclude``-<container> "true"
    that container's; ``sample`` (a number from 0 to 1) keeps that share of them;
    with ``fluentbit``, Fluent Bit's ``fluentbit.io/exclude`` (and -<container>)
    too. Values are case-insensitive."""

    exclude: str = "kubemeta.io/exclude"
    sample: str = "kubemeta.io/sample-rate"
    fluentbit: bool = False


class Shaper:
    """``problem``: told, once per shaping, of an annotation it could not use."""

    def __init__(self, de_dot: bool, separator: str, annotation_match: Iterable[str],
                 extra_fields: Iterable[str] = (), log_control: LogControl | None = None,
                 problem: Callable[[str], object] | None = None,
                 node_label_match: Iterable[str] = ()) -> None:
        self._de_dot = de_dot
        self._sep = separator
        self._match = [re.compile(p) for p in annotation_match]
        self._node_match = [re.compile(p) for p in node_label_match]
        self._extra = frozenset(extra_fields) - {"node_labels"}  # the pod's own
        self._control = log_control
        self._problem = problem

    def pod(self, obj: Any, name: str) -> PodMeta:
        md = _metadata(obj, "Pod", name)
        spec = obj.get("spec")
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        ann = _strmap(md, "annotations")
        extras = self._extras(obj, md) if self._extra else {}
        if self._control is not None and ann:
            marks, excluded = self._marks(ann, name)
            if marks:
                extras["extra"] = extras.get("extra", ()) + marks
            extras["excluded"] = excluded
        return PodMeta(
            uid=_str(md.get("uid")),
            labels=self._keys(_strmap(md, "labels")),
            annotations=self._keys(self._annotations(ann)),
            node_name=_intern(_str(node)),
            container_ids=_container_ids(obj.get("status")),
            **extras,
        )

    def _marks(self, ann: Labels, name: str) -> tuple[tuple[tuple[str, str], ...],
                                                      tuple[str, ...]]:
        """log control: the pod-level marks, and the containers excluded."""
        assert self._control is not None
        names = [self._control.exclude] + ([FLUENTBIT_EXCLUDE] if self._control.fluentbit
                                           else [])
        if any(_true(ann.get(n)) for n in names):
            return ((EXCLUDE, "true"),), ()
        excluded = tuple(sorted({k[len(n) + 1:] for k, v in ann.items() if _true(v)
                                 for n in names if k.startswith(n + "-")}))
        raw = ann.get(self._control.sample)
        if raw is None:
            return (), excluded
        try:
            rate = float(raw)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:  # NaN too
            if self._problem is not None:
                self._problem(f"pod {name}: annotation {self._control.sample}: "
                              f"{raw[:40]!r} is not a number from 0 to 1; its lines are all "
                              f"kept")
            return (), excluded
        if rate >= 1.0:
            return (), excluded
        return ((SAMPLE, str(round(rate * 1000))),), excluded

    def _extras(self, obj: dict[str, Any], md: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        raw = obj.get("status")
        status: dict[str, Any] = raw if isinstance(raw, dict) else {}
        pod_level: list[tuple[str, str]] = []
        if "pod_ip" in self._extra:
            ip = _str(status.get("podIP"))
            if ip:
                pod_level.append(("pod_ip", ip))
        if "owner" in self._extra:
            pod_level.extend(owner_fields(md))
        out["extra"] = tuple(pod_level)
        if self._extra & {"container_image", "container_image_id"}:
            keep_image = "container_image" in self._extra
            keep_id = "container_image_id" in self._extra
            out["images"] = {name: (image if keep_image else None, iid if keep_id else None)
                             for name, (image, iid) in _images(obj.get("spec"), status).items()}
        return out

    def node_labels(self, obj: Any, name: str) -> Labels:
        """A Node's labels that match ``node_label_match``, keys de-dotted."""
        md = _metadata(obj, "Node", name)
        labels = _strmap(md, "labels") or {}
        kept = {k: v for k, v in labels.items() if any(rx.search(k) for rx in self._node_match)}
        return self._keys(kept) or {}

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
        """De-dotted keys. Keys and short values are interned: thousands of pods
        share a handful of label keys and values, and each pod would otherwise
        hold its own copies."""
        if m is None:
            return m
        if self._de_dot:
            sep = self._sep
            return {intern(k.replace(".", sep)): _value(v) for k, v in m.items()}
        return {intern(k): _value(v) for k, v in m.items()}


def _value(v: str) -> str:
    return intern(v) if len(v) <= 64 else v


def shared_strings(m: Labels) -> Labels:
    """The same labels, keys and short values interned (see Shaper._keys)."""
    return {intern(k): _value(v) for k, v in m.items()}


def _intern(v: str | None) -> str | None:
    return intern(v) if v is not None else None


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


def _container_ids(status: Any) -> tuple[str, ...]:
    """The runtime ids ("containerd://<id>" without the scheme) of every container."""
    if not isinstance(status, dict):
        return ()
    out = set()
    for key in _STATUS_LISTS:
        items = status.get(key)
        for c in items if isinstance(items, list) else ():
            cid = c.get("containerID") if isinstance(c, dict) else None
            if isinstance(cid, str) and cid:
                out.add(cid.rpartition("://")[2])
    return tuple(sorted(out))


_CRONJOB_JOB = re.compile(r"^(.+)-[0-9]{8,}$")  # <cronjob>-<scheduled time, in minutes>


def owner_fields(md: dict[str, Any]) -> list[tuple[str, str]]:
    """The workload that owns a pod, from its controller reference alone.

    A ReplicaSet named <deployment>-<pod-template-hash> (the hash being the pod's
    own label) belongs to that Deployment; a Job named <name>-<digits> is taken
    to be a CronJob's. Nothing else is fetched, so nothing is watched cluster-wide.
    """
    refs = md.get("ownerReferences")
    ctrl = next((r for r in refs if isinstance(r, dict) and r.get("controller") is True),
                None) if isinstance(refs, list) else None
    if ctrl is None:
        return []
    kind, name = ctrl.get("kind"), ctrl.get("name")
    if not isinstance(name, str) or not name:
        return []
    if kind == "ReplicaSet":
        labels = md.get("labels")
        h = labels.get("pod-template-hash") if isinstance(labels, dict) else None
        if isinstance(h, str) and h and name.endswith("-" + h):
            return [("deployment", name[:-len(h) - 1])]
        return []
    if kind == "StatefulSet":
        return [("statefulset", name)]
    if kind == "DaemonSet":
        return [("daemonset", name)]
    if kind == "Job":
        m = _CRONJOB_JOB.match(name)
        return [("job", name)] + ([("cronjob", m[1])] if m else [])
    return []


def _images(spec: Any, status: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """Each container's image (as running, else as specified) and image id."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(key) if isinstance(spec, dict) else None
        for c in items if isinstance(items, list) else ():
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                out[c["name"]] = (_str(c.get("image")), None)
    for key in _STATUS_LISTS:
        items = status.get(key)
        for c in items if isinstance(items, list) else ():
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                image = _str(c.get("image")) or out.get(c["name"], (None, None))[0]
                out[c["name"]] = (image, _str(c.get("imageID")) or None)
    return out


def _true(v: str | None) -> bool:
    return v is not None and v.strip().lower() == "true"


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _strmap(md: dict[str, Any], key: str) -> Labels | None:
    m = md.get(key)
    if not isinstance(m, dict):
        return None
    return {k: v for k, v in m.items() if isinstance(k, str) and isinstance(v, str)}


def ns_fields(ns: NamespaceMeta) -> dict[str, Any]:
    """The namespace's members of $!kubernetes, in mmkubernetes's order."""
    k: dict[str, Any] = {}
    if ns.uid is not None:
        k["namespace_id"] = ns.uid
    if ns.labels is not None:
        k["namespace_labels"] = ns.labels
    if ns.annotations is not None:
        k["namespace_annotations"] = ns.annotations
    if ns.creation_timestamp is not None:
        k["creation_timestamp"] = ns.creation_timestamp
    return k


def pod_fields(pod: PodMeta) -> dict[str, Any]:
    """The pod's own members of $!kubernetes, in mmkubernetes's order."""
    k: dict[str, Any] = {}
    if pod.uid is not None:
        k["pod_id"] = pod.uid
    if pod.annotations is not None:
        k["annotations"] = pod.annotations
    if pod.labels is not None:
        k["labels"] = pod.labels
    if pod.node_name is not None:
        k["host"] = pod.node_name
    return k


def extra_fields(pod: PodMeta) -> dict[str, Any]:
    """The pod's members after mmkubernetes's own: extra_fields and log control's
    marks, then its node's labels."""
    k: dict[str, Any] = dict(pod.extra)
    if pod.node_labels is not None:
        k["node_labels"] = pod.node_labels
    return k


def container_fields(pod: PodMeta, container: str) -> dict[str, str]:
    """One container's members: extra_fields' container_image and
    container_image_id when known, and log control's mark when it is excluded."""
    image, image_id = (pod.images or {}).get(container, (None, None))
    k: dict[str, str] = {}
    if image:
        k["container_image"] = image
    if image_id:
        k["container_image_id"] = image_id
    if container in pod.excluded:
        k[EXCLUDE] = "true"
    return k


def containers(pod: PodMeta) -> list[str]:
    """The containers that have members of their own."""
    return sorted(set(pod.images or ()) | set(pod.excluded))


def line_fields(ref: PodRef, pod_known: bool, master_url: str) -> dict[str, Any]:
    """The members of $!kubernetes that come from the line itself (its file name):
    after the namespace's and the pod's, in mmkubernetes's order."""
    k: dict[str, Any] = {}
    if not pod_known and ref.pod_uid is not None:
        k["pod_id"] = ref.pod_uid
    k["pod_name"] = ref.pod
    k["namespace_name"] = ref.namespace
    k["container_name"] = ref.container
    k["master_url"] = master_url
    return k


def docker_fields(ref: PodRef) -> dict[str, str]:
    """The $!docker object."""
    return {"container_id": ref.container_id} if ref.container_id is not None else {}


def kubernetes_fields(ref: PodRef, pod: PodMeta | None, ns: NamespaceMeta | None,
                      master_url: str) -> dict[str, Any]:
    """The $!kubernetes object, keys in mmkubernetes's order."""
    k: dict[str, Any] = ns_fields(ns) if ns is not None else {}
    if pod is not None:
        k.update(pod_fields(pod))
    k.update(line_fields(ref, pod is not None, master_url))
    if pod is not None:
        # extra_fields, after mmkubernetes's own (none unless asked for)
        k.update(extra_fields(pod))
        k.update(container_fields(pod, ref.container))
    return k


def same_pod(ref: PodRef, uid: str | None) -> bool:
    """False when the line names another pod by uid than the one known by its name
    (recreated under the same name): that one must not lend it its metadata."""
    return not (ref.pod_uid and uid and uid != ref.pod_uid)


def reply_object(ref: PodRef, pod: PodMeta | None, ns: NamespaceMeta | None,
                 master_url: str) -> dict[str, Any]:
    """The whole mmexternal reply: both objects complete, since rsyslog merges $! shallowly."""
    return {"$!": {"kubernetes": kubernetes_fields(ref, pod, ns, master_url),
                   "docker": docker_fields(ref)}}
