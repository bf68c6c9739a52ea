"""Pod and Namespace objects shaped like the real API's, and Status errors."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def container_id(namespace: str, pod: str, container: str, uid: str | None = None) -> str:
    """The 64-hex id a runtime would give this container (stable, for tests; a pod
    made with an explicit uid gets ids of its own, as a recreated pod does)."""
    return _hex(f"{namespace}/{pod}/{container}" + (f"/{uid}" if uid else ""))


def make_namespace(name: str, labels: dict[str, str] | None = None,
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name,
                          "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}
    if annotations:
        md["annotations"] = dict(annotations)
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": md,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def make_node(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Node as the kubelet registers it: its well-known labels, then ``labels``."""
    md = {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                   **(labels or {})}}
    return {"kind": "Node", "apiVersion": "v1", "metadata": md,
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.29.0"}}}


def make_pod(namespace: str, name: str, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, node: str = "node-1",
             containers: tuple[str, ...] = ("app",), uid: str | None = None,
             pod_ip: str = "10.244.1.7") -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if uid:
        md["uid"] = uid
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    return {
        "kind": "Pod", "apiVersion": "v1", "metadata": md,
        "spec": {
            "nodeName": node,
            "containers": [{"name": c, "image": f"registry.example/{c}:1.0"} for c in containers],
            "restartPolicy": "Always", "serviceAccountName": "default",
        },
        "status": {
            "phase": "Running", "podIP": pod_ip, "hostIP": "192.0.2.10",
            "containerStatuses": [
                {"name": c, "ready": True, "restartCount": 0,
                 "image": f"registry.example/{c}:1.0",
                 "imageID": f"registry.example/{c}@sha256:{_hex(c)}",
                 "containerID": f"containerd://{container_id(namespace, name, c, uid)}"}
                for c in containers],
        },
    }


def new_uid() -> str:
    return str(uuid.uuid4())


def status(code: int, reason: str, message: str,
           details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason,
                            "code": code}
    if details:
        body["details"] = details
    return body


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
