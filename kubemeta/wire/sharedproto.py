"""How the helpers of one node share a view: names and messages, sans-IO.

rsyslog starts one helper per queue worker thread. The helpers that share a
``state_dir`` and the same setup (API, node, output shaping) form a group;
one of them leads (it holds the group's lock, talks to the API, publishes what
it knows), the others follow (they load what it publishes and ask it for pods
they do not know yet). This module names the group's lock, shared file and
socket, and encodes the datagrams between followers and the leader. Bad
datagrams raise MessageError, the only error it raises.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from kubemeta import jsonlib
from kubemeta.errors import KubemetaError

# A follower's questions; "hello" says a follower exists (the leader publishes
# only while one does; ``name`` carries its pid) and asks for nothing; "ready"
# is answered once the leader can ask the API (its client is built); "status"
# (from ``kubemeta status``) is answered with the node's health.
KINDS = ("pod", "ns", "hello", "ready", "status")
# The leader's answers: the metadata; the API says it does not exist; the
# leader could not find out (``reason`` says why).
STATUSES = ("ok", "missing", "unavailable")
MAX_DATAGRAM = 192 * 1024  # below Linux's default unix datagram limit


class MessageError(KubemetaError):
    """A datagram that is not one of ours."""


@dataclass(frozen=True)
class Group:
    lock_path: str
    shared_path: str
    snapshot_path: str  # the warm-start snapshot: one per group, as the view
    address: str  # the leader's socket: a file in state_dir, which no other user can take

    @property
    def key(self) -> str:
        """What names the group's files in state_dir."""
        return os.path.basename(self.lock_path).removeprefix("leader-").removesuffix(".lock")

    @classmethod
    def of(cls, state_dir: str, ident: dict[str, Any]) -> Group:
        """Helpers with the same state_dir and setup are one group; any other setup
        (another API, node or output shaping) is another group, never mixed."""
        where = os.path.abspath(state_dir)
        digest = hashlib.sha256(jsonlib.dumps([where, ident])).hexdigest()[:16]
        return cls(os.path.join(where, f"leader-{digest}.lock"),
                   os.path.join(where, f"shared-{digest}.view"),
                   os.path.join(where, f"snapshot-{digest}.json"),
                   os.path.join(where, f"leader-{digest}.sock"))


@dataclass(frozen=True)
class Request:
    id: int
    kind: str
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Answer:
    id: int
    status: str
    meta: dict[str, Any] | None = None
    reason: str = ""


def encode_request(r: Request) -> bytes:
    return jsonlib.dumps({"id": r.id, "kind": r.kind, "ns": r.namespace, "name": r.name})


def decode_request(data: bytes) -> Request:
    d = _object(data)
    kind, ns, name, rid = d.get("kind"), d.get("ns"), d.get("name"), d.get("id")
    if kind not in KINDS or not isinstance(ns, str) or not isinstance(name, str) \
            or not isinstance(rid, int):
        raise MessageError("not a request")
    return Request(rid, kind, ns[:300], name[:300])


def encode_answer(a: Answer) -> bytes:
    data = jsonlib.dumps({"id": a.id, "status": a.status, "meta": a.meta,
                          "reason": a.reason[:300]})
    if len(data) > MAX_DATAGRAM:
        # Too large to send: the follower finds it in the shared file instead.
        return jsonlib.dumps({"id": a.id, "status": "unavailable", "meta": None,
                              "reason": "answer too large for a datagram"})
    return data


def decode_answer(data: bytes) -> Answer:
    d = _object(data)
    rid, status, meta, reason = d.get("id"), d.get("status"), d.get("meta"), d.get("reason")
    if not isinstance(rid, int) or status not in STATUSES or not isinstance(reason, str) \
            or not (meta is None or isinstance(meta, dict)) \
            or (status == "ok") != isinstance(meta, dict):
        raise MessageError("not an answer")
    return Answer(rid, status, meta, reason[:300])


def _object(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_DATAGRAM:
        raise MessageError("datagram too large")
    try:
        d = jsonlib.loads(data)
    except (ValueError, RecursionError) as e:
        raise MessageError("not JSON") from e
    if not isinstance(d, dict):
        raise MessageError("not a JSON object")
    return d
