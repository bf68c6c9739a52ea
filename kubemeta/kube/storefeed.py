"""A reflector's view, kept in the metadata store: objects are shaped once as
they arrive (only the fields we emit are kept), and the watch's health is
logged once per change of state, not once per failure, and kept in the store
for the counters (up or stale, when it was last heard from, requests by
status)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kubemeta.cache.counters import FeedHealth
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import ApiError, ShapeError
from kubemeta.kinds import Kind
from kubemeta.model.schema import Shaper
from kubemeta.wire.watchproto import WatchEvent

log = logging.getLogger("kubemeta.watch")


def shape(shaper: Shaper, kind: str, obj: Any) -> tuple[Any, Any] | None:
    """An API object as the store keeps it, with its key ((namespace, name) for a
    pod); None when it has no name (or namespace). Raises ShapeError."""
    md = obj.get("metadata") if isinstance(obj, dict) else None
    name = md.get("name") if isinstance(md, dict) else None
    if not isinstance(name, str) or not isinstance(md, dict):
        return None
    if kind == Kind.NODE:
        return name, shaper.node_labels(obj, name)
    if kind != Kind.POD:
        return name, shaper.namespace(obj, name)
    ns = md.get("namespace")
    return ((ns, name), shaper.pod(obj, name)) if isinstance(ns, str) else None


class StoreFeed:
    def __init__(self, store: MetadataStore, kind: str, shaper: Shaper, what: str,
                 clock: Clock = SYSTEM, verb: str = "watching",
                 resource: str | None = None, node: str = "") -> None:
        """``resource``: its name in the counters (pods, namespaces, nodes);
        ``node``: for Kind.NODE, the one node whose labels go to the store."""
        self._verb = verb
        self._store = store
        self._kind = kind
        self._shaper = shaper
        self.what = what
        self._clock = clock
        self.synced = False
        self.stale_since: float | None = None
        self.health = FeedHealth()
        self._counted = resource is not None  # an API resource: its requests are counted
        self.node = node
        if resource is not None:
            store.feeds[resource] = self.health

    def _shape(self, obj: dict[str, Any]) -> tuple[Any, Any] | None:
        try:
            return shape(self._shaper, self._kind, obj)
        except ShapeError as e:
            log.debug("%s: ignoring a malformed object: %s", self.what, e)
            return None

    def replace(self, items: Iterable[dict[str, Any]]) -> dict[Any, Any]:
        """Returns the shaped objects, by key. Each object is shaped as it comes, so
        only what is kept of it stays; nothing is applied if ``items`` raises."""
        entries = {}
        for obj in items:
            shaped = self._shape(obj) if isinstance(obj, dict) else None
            if shaped is not None:
                entries[shaped[0]] = shaped[1]
        if self._kind == Kind.NODE:  # the node alone (what) is listed
            self._store.node_labels(self.node, entries.get(self.node, {}))
        else:
            self._store.replace_watched(self._kind, entries)
        self._count("list.200")
        self.health.up = True
        self.heard()
        if not self.synced:
            self.synced = True
            log.info("%s: listed %d, now %s", self.what, len(entries), self._verb,
                     extra={"event": "watch_synced", "objects": len(entries)})
            if not entries and self._kind == Kind.POD and self._counted:
                # A node runs pods (daemonsets at least): a node_name that is not
                # the node's name in Kubernetes lists none, and every pod then
                # costs requests of its own.
                log.warning("%s: the API lists no pod there; is node_name this node's name "
                            "in Kubernetes (kubectl get nodes)? Until it is, each pod costs "
                            "requests of its own", self.what, extra={"event": "node_empty"})
        else:
            log.debug("%s: listed %d again", self.what, len(entries))
        self.live()
        return entries

    def opened(self) -> None:
        self._count("watch.200")
        self.heard()

    def _count(self, status: str) -> None:
        if self._counted:
            self._store.counters.apirequests[status] += 1

    def heard(self) -> None:
        self.health.last_heard = self._clock()

    def apply(self, event: WatchEvent) -> None:
        shaped = self._shape(event.obj)
        if shaped is None:
            return
        key, meta = shaped
        if self._kind == Kind.NODE:
            if key == self.node:
                self._store.node_labels(key, {} if event.type == "DELETED" else meta)
        elif event.type == "DELETED":
            self._store.forget_watched(self._kind, key)
        else:
            self._store.put_watched(self._kind, key, meta)
        if log.isEnabledFor(logging.DEBUG):  # when a change took effect, for tracing
            log.debug("%s: %s %s applied", self.what, event.type,
                      "/".join(key) if isinstance(key, tuple) else key)

    def stale(self, why: ApiError, verb: str = "list") -> None:
        """``verb``: what failed, a list or a watch."""
        self._store.list_over(self._kind)
        self._count(f"{verb}.{why.status}")
        self.health.up = False
        self.health.last_error = why.reason
        if self.stale_since is None:
            self.stale_since = self._clock()
            log.warning("%s: %s failed: %s; serving cached metadata, retrying", self.what,
                        "watch" if self._verb == "watching" else "list",
                        why.reason, extra={"event": "watch_stale", "api_status": why.status})

    def live(self) -> None:
        self.health.up = True
        self._store.api_maybe_back()
        if self.stale_since is not None:
            log.warning("%s: %s restored after %.0f s", self.what,
                        "watch" if self._verb == "watching" else "list",
                        self._clock() - self.stale_since,
                        extra={"event": "watch_live",
                               "outage_seconds": round(self._clock() - self.stale_since, 1)})
            self.stale_since = None
