"""The emulated cluster's state: objects, their history for watches, tokens,
injected faults and request counters, behind one lock."""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from apiemulator.objects import new_uid

FAULT_ACTIONS = ("status", "hang", "reset", "close", "delay", "garbage", "truncate",
                 "wrong_kind", "huge", "trickle", "trickle_headers", "endless",
                 "endless_error", "tls")
# Phases of an API server's life, for timelines: each maps to faults (or none).
PHASES = ("ok", "refused", "forbidden", "hang", "reset", "slow", "throttled", "unavailable",
          "server_error", "tls", "garbage", "truncated")


@dataclass
class Fault:
    """One injected misbehaviour, for requests whose path matches ``path``."""

    action: str
    path: str = ".*"
    status: int = 503
    times: int | None = None  # None: until cleared
    seconds: float = 0.0
    retry_after: int | None = None
    size: int = 8 * 1024 * 1024
    pause_at: int | None = None  # huge: body bytes sent before pausing ``seconds``
    rx: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {FAULT_ACTIONS}")
        self.rx = re.compile(self.path)


class Event(NamedTuple):
    """One change: its resourceVersion, the watch event type, the object then."""

    rv: int
    type: str
    obj: dict[str, Any]


class World:
    """The objects, tokens, faults and counters, behind one lock.

    Every change is also kept in a bounded history, as the API server's watch
    cache does: a watch may start from any resourceVersion still in it, and
    one from an older version is answered 410 Gone (so is every version up to
    ``compacted``, which a test can move on with ``compact``).
    """

    HISTORY = 10000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.rv = 1000
        self.tokens: dict[str, str] = {}
        self.forbidden_users: set[str] = set()
        self.faults: list[Fault] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=5000)
        self.by_status: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.total = 0
        self.connections = 0  # TLS handshakes completed: a client that pools makes few
        self.released = threading.Event()  # set to free hung requests
        self.history: deque[Event] = deque(maxlen=self.HISTORY)
        self.compacted = 0
        self.changed = threading.Condition(self.lock)
        self.bookmark_interval = 5.0  # seconds between BOOKMARK events on a quiet watch
        # A watch from a version the server has not reached waits this long for it,
        # then fails 504 ResourceVersionTooLarge (the API server's 3 s).
        self.too_new_wait = 3.0

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        """Record a change. Caller holds the lock and has moved self.rv on."""
        self.history.append(Event(self.rv, kind, json.loads(json.dumps(obj))))
        self.changed.notify_all()

    def too_old(self, rv: int) -> bool:
        """Whether a watch from ``rv`` has lost events. Caller holds the lock."""
        oldest = self.history[0].rv if len(self.history) == self.history.maxlen else 0
        return rv < self.compacted or rv < oldest - 1

    def compact(self) -> None:
        """Forget the history: watches from any version up to now get 410 Gone."""
        with self.lock:
            self.compacted = self.rv

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj.get("kind")
        md = obj.setdefault("metadata", {})
        with self.lock:
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            if kind == "Namespace":
                old = self.namespaces.get(md["name"])
            elif kind == "Pod":
                old = self.pods.get((md["namespace"], md["name"]))
            elif kind == "Node":
                old = self.nodes.get(md["name"])
            else:
                raise ValueError(f"unsupported kind {kind!r}")
            keep_uid = old["metadata"]["uid"] if old else None
            md.setdefault("uid", keep_uid or new_uid())
            md.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else
                          datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if kind == "Namespace":
                self.namespaces[md["name"]] = obj
            elif kind == "Node":
                self.nodes[md["name"]] = obj
            else:
                self.pods[(md["namespace"], md["name"])] = obj
            self._event("MODIFIED" if old else "ADDED", obj)
            return obj

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        with self.lock:
            if kind == "Namespace":
                obj = self.namespaces.pop(name, None)
            elif kind == "Node":
                obj = self.nodes.pop(name, None)
            else:
                obj = self.pods.pop((namespace or "", name), None)
            if obj is None:
                return False
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._event("DELETED", obj)
            return True

    def take_fault(self, path: str, tls: bool = False) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if (f.action == "tls") == tls and f.rx.search(path):
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self.faults.remove(f)
                    return f
        return None

    def record(self, path: str, code: int, user: str | None, kind: str) -> None:
        with self.lock:
            self.total += 1
            self.by_status[str(code)] += 1
            self.by_kind[kind] += 1
            self.requests.append({"t": time.time(), "path": path, "code": code, "user": user,
                                  "kind": kind})
