"""The cache rules: what is known, how long it stays fresh, and what a deleted
pod leaves behind. Pure code over the ``now`` it is given: no lock, no thread,
no clock. The store (store.py) holds the lock around every call.

- An answer is fresh for its kind's TTL; a 404 for ``not_found_ttl``.
- A watched entry is fresh for as long as it is watched: the watch delivers
  its changes, so no line asks for it, and a GET answer never overwrites it.
- A deleted pod becomes a tombstone, found by uid or container id (never by
  name, which the next pod may take), kept while its logs are still read
  (``deleted_quiet``) and at most ``deleted_max_age``.
- ``generation`` moves on whenever what a snapshot or a shared view would
  hold may have changed.
- extra_fields' node_labels: every pod of the watched node carries the node's
  labels as they are now, whatever brought the pod in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

from kubemeta.kinds import Kind
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta

T = TypeVar("T")
PodKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A cached answer. ``value`` None means the API said 404."""

    value: T | None
    fresh_until: float


@dataclass(slots=True)
class Tombstone:
    """A deleted pod's last metadata, kept for the lines still to be read from its
    containers' logs, which name it by uid or container id, never by name alone."""

    entry: Entry[PodMeta]
    deleted_at: float
    last_line: float


@dataclass(frozen=True)
class CacheSettings:
    pod_ttl: float
    namespace_ttl: float
    not_found_ttl: float
    pod_cache_size: int
    namespace_cache_size: int
    deleted_quiet: float
    deleted_max_age: float
    deleted_max: int


@dataclass(slots=True)
class Seen:
    """What one line found: the entries to serve, and which kinds to ask for."""

    pod: Entry[PodMeta] | None
    ns: Entry[NamespaceMeta] | None
    deleted: bool      # the pod is a tombstone: served as it was, never asked for
    pod_due: bool      # missing or stale: ask for it
    ns_due: bool


Shared = tuple[list[tuple[PodKey, PodMeta, float]], list[tuple[str, NamespaceMeta, float]],
               list[tuple[PodMeta, float]]]
Exported = tuple[list[tuple[PodKey, PodMeta]], list[tuple[str, NamespaceMeta]],
                 list[tuple[PodMeta, float]]]


class Caches:
    SWEEP_INTERVAL = 5.0

    def __init__(self, settings: CacheSettings) -> None:
        self._s = settings
        self.pods: LRUCache[PodKey, Entry[PodMeta]] = LRUCache(maxsize=settings.pod_cache_size)
        self.nss: LRUCache[str, Entry[NamespaceMeta]] = LRUCache(
            maxsize=settings.namespace_cache_size)
        self._watched: dict[Kind, set[Any]] = {Kind.POD: set(), Kind.NS: set()}
        self._deleted: dict[str, Tombstone] = {}     # by pod uid, oldest first
        self._deleted_cids: dict[str, str] = {}      # container id -> pod uid
        self._next_sweep = 0.0
        self.generation = 0
        self._node: tuple[str, dict[str, str]] | None = None  # node_labels: (node, labels)

    def _stamped(self, pod: PodMeta) -> PodMeta:
        node = self._node
        if node is None or pod.node_name != node[0] or pod.node_labels == node[1]:
            return pod
        return dataclasses.replace(pod, node_labels=node[1])

    def node_labels(self, node: str, labels: dict[str, str]) -> bool:
        """The node's labels are now ``labels``: its pods carry them (those known
        already too). False when they were already."""
        if self._node == (node, labels):
            return False
        self._node = (node, labels)
        for key, e in list(self.pods.items()):
            if e.value is not None and e.value.node_name == node:
                self.pods[key] = dataclasses.replace(e, value=self._stamped(e.value))
        self.generation += 1
        return True

    def _cache(self, kind: str) -> Any:
        return self.pods if kind == Kind.POD else self.nss

    def ttl(self, kind: str) -> float:
        return self._s.pod_ttl if kind == Kind.POD else self._s.namespace_ttl

    # -- reading --
    def line(self, ref: PodRef, now: float) -> Seen:
        """One line's lookup; a deleted pod's line keeps its tombstone alive."""
        grave = self._grave(ref) if self._deleted else None
        if grave is not None:
            grave.last_line = now
            pe: Entry[PodMeta] | None = grave.entry
        else:
            pe = self.pods.get((ref.namespace, ref.pod))
        ne = self.nss.get(ref.namespace)
        return Seen(pe, ne, grave is not None,
                    grave is None and (pe is None or pe.fresh_until <= now),
                    ne is None or ne.fresh_until <= now)

    def entry(self, kind: str, key: Any) -> Entry[Any] | None:
        return self._cache(kind).get(key)  # type: ignore[no-any-return]

    def is_due(self, entry: Entry[Any] | None, now: float) -> bool:
        return entry is None or entry.fresh_until <= now

    def _grave(self, ref: PodRef) -> Tombstone | None:
        uid = ref.pod_uid
        if uid is None and ref.container_id is not None:
            uid = self._deleted_cids.get(ref.container_id)
        return self._deleted.get(uid) if uid is not None else None

    # -- an answer to a GET --
    def answered(self, kind: str, key: Any, value: Any, now: float) -> None:
        """``value`` None: the API said 404. A pod known before and now 404 was
        deleted since it was last asked for."""
        ttl = self._s.not_found_ttl if value is None else self.ttl(kind)
        cache = self._cache(kind)
        if kind == Kind.POD:
            if value is not None:
                value = self._stamped(value)
            old = cache.get(key)
            if value is None and old is not None:
                self._bury(old.value, now)
            elif value is not None and self._deleted:
                self._unbury(value.uid)
        self.generation += 1
        if key in self._watched[Kind(kind)] and key in cache:
            return  # the watch is the fresher source
        cache[key] = Entry(value, now + ttl)

    # -- the kubelet, while the API fails --
    def stopgap(self, key: PodKey, value: PodMeta, now: float) -> bool:
        """A pod the node's kubelet has, while the API cannot say: served at once
        and due at once, so that the API's answer replaces it as soon as there is
        one. Never over what the API said (an entry; a 404 is older news than a
        running pod) nor over a deleted pod's tombstone."""
        old = self.pods.get(key)
        if (old is not None and old.value is not None) or (
                value.uid is not None and value.uid in self._deleted):
            return False
        self.pods[key] = Entry(self._stamped(value), now)
        self.generation += 1
        return True

    # -- a watch --
    def put_watched(self, kind: str, key: Any, value: Any) -> None:
        if kind == Kind.POD:
            value = self._stamped(value)
        cache = self._cache(kind)
        watched = self._watched[Kind(kind)]
        old = cache.get(key)
        if old is None or old.value != value or key not in watched:
            cache[key] = Entry(value, math.inf)
            self.generation += 1
        if kind == Kind.POD and self._deleted:
            self._unbury(value.uid)  # not deleted after all (a relist has it)
        watched.add(key)

    def forget_watched(self, kind: str, key: Any, now: float) -> None:
        """The object was deleted: a pod is kept for its unread lines, a namespace
        serves its last lines for a TTL."""
        cache = self._cache(kind)
        self._watched[Kind(kind)].discard(key)
        old = cache.get(key)
        if old is None:
            return
        if kind == Kind.POD and old.value is not None and old.value.uid is not None:
            # Its lines find it by uid or container id from now on; by name,
            # they would find whichever pod takes the name next.
            self._bury(old.value, now)
            del cache[key]
        else:
            cache[key] = Entry(old.value, now + self.ttl(kind))

    def unlisted(self, kind: str, keys: Iterable[Any]) -> set[Any]:
        """What is watched and not in a complete list: deleted meanwhile."""
        return self._watched[Kind(kind)] - set(keys)

    def watched(self, kind: str) -> int:
        return len(self._watched[Kind(kind)])

    # -- deleted pods --
    def _bury(self, pod: PodMeta | None, now: float, deleted_at: float | None = None) -> None:
        if pod is None or pod.uid is None:
            return
        self._unbury(pod.uid)
        while len(self._deleted) >= self._s.deleted_max:
            self._unbury(next(iter(self._deleted)))
        self._deleted[pod.uid] = Tombstone(Entry(pod, math.inf),
                                           now if deleted_at is None else deleted_at, now)
        self.generation += 1
        for cid in pod.container_ids:
            self._deleted_cids[cid] = pod.uid

    def _unbury(self, uid: str | None) -> None:
        grave = self._deleted.pop(uid, None) if uid is not None else None
        if grave is None:
            return
        self.generation += 1
        if grave.entry.value is not None:
            for cid in grave.entry.value.container_ids:
                if self._deleted_cids.get(cid) == uid:
                    del self._deleted_cids[cid]

    def sweep(self, now: float) -> None:
        """Forget deleted pods whose logs went quiet, or that were deleted too long
        ago; at most every SWEEP_INTERVAL, however often it is called."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_INTERVAL
        quiet, max_age = self._s.deleted_quiet, self._s.deleted_max_age
        for uid, grave in list(self._deleted.items()):
            if now - grave.last_line > quiet or now - grave.deleted_at > max_age:
                self._unbury(uid)

    def deleted(self) -> int:
        return len(self._deleted)

    # -- a follower's store --
    def forget_known(self, before: float) -> None:
        """Drop the answers (not the 404s) received before ``before``. An answer
        came ``ttl`` before its entry goes stale."""
        caches: list[tuple[Any, float]] = [(self.pods, self._s.pod_ttl),
                                           (self.nss, self._s.namespace_ttl)]
        for cache, ttl in caches:
            for key, entry in list(cache.items()):
                if entry.value is not None and entry.fresh_until - ttl <= before:
                    del cache[key]

    # -- what leaves the process: the shared view, the snapshot --
    def shared(self) -> Shared:
        """The known entries with when they go stale, and the deleted pods with
        when they were deleted."""
        pods = [(k, e.value, e.fresh_until) for k, e in list(self.pods.items())
                if e.value is not None]
        nss = [(k, e.value, e.fresh_until) for k, e in list(self.nss.items())
               if e.value is not None]
        deleted = [(g.entry.value, g.deleted_at) for g in self._deleted.values()
                   if g.entry.value is not None]
        return pods, nss, deleted

    def export(self, now: float) -> Exported:
        """What is known (not the 404s), and the deleted pods with their ages."""
        pods = [(k, e.value) for k, e in list(self.pods.items()) if e.value is not None]
        nss = [(k, e.value) for k, e in list(self.nss.items()) if e.value is not None]
        deleted = [(g.entry.value, now - g.deleted_at) for g in self._deleted.values()
                   if g.entry.value is not None]
        return pods, nss, deleted

    def preload(self, pods: list[tuple[PodKey, PodMeta]], nss: list[tuple[str, NamespaceMeta]],
                deleted: list[tuple[PodMeta, float]], now: float,
                spread: Callable[[], float]) -> None:
        """Seed (never over what is known): served at once, stale after
        ``spread()`` times their TTL."""
        for key, pod in pods[-self._s.pod_cache_size:]:
            if key not in self.pods:
                self.pods[key] = Entry(self._stamped(pod), now + spread() * self._s.pod_ttl)
        for name, ns in nss[-self._s.namespace_cache_size:]:
            if name not in self.nss:
                self.nss[name] = Entry(ns, now + spread() * self._s.namespace_ttl)
        for pod, age in deleted:
            if age < self._s.deleted_max_age and pod.uid not in self._deleted:
                self._bury(pod, now, now - age)
        self.generation += 1
