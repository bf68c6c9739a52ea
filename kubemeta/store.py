"""The metadata cache and the background lookups that fill it.

The per-line path calls ``lookup`` and never touches the network: a missing
or expired entry is queued for a worker thread (one request per object, however
many lines ask), and the caller waits for it only while the API is believed
healthy and only until its deadline. What was known stays served: a failed
refresh keeps the last good entry, and a transient error is never cached as an
answer. A 404 is, briefly (``not_found_ttl``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

from kubemeta.errors import ApiError, ApiNotFound, ApiUnauthorized, ConfigError
from kubemeta.identify import PodRef
from kubemeta.schema import NamespaceMeta, PodMeta, ShapeError

log = logging.getLogger("kubemeta.store")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A cached answer. ``value`` None means the API said 404."""

    value: T | None
    fresh_until: float


PodKey = tuple[str, str]


@dataclass
class Counters:
    """mmkubernetes's counter names, plus our own."""

    recordseen: int = 0
    namespacemetadatasuccess: int = 0
    namespacemetadatanotfound: int = 0
    namespacemetadatabusy: int = 0
    namespacemetadataerror: int = 0
    podmetadatasuccess: int = 0
    podmetadatanotfound: int = 0
    podmetadatabusy: int = 0
    podmetadataerror: int = 0
    podcachehits: int = 0
    podcachemisses: int = 0
    namespacecachehits: int = 0
    namespacecachemisses: int = 0


class Source:
    """What the store needs from the API: two GETs returning shaped metadata."""

    def pod(self, namespace: str, name: str) -> PodMeta:
        raise NotImplementedError

    def namespace(self, name: str) -> NamespaceMeta:
        raise NotImplementedError

    def on_unauthorized(self) -> None:
        """Credentials were rejected: re-read them before the next request."""


class MetadataStore:
    def __init__(self, source_factory: Callable[[], Source], *, clock: Callable[[], float],
                 pod_ttl: float, namespace_ttl: float, not_found_ttl: float,
                 error_retry_interval: float, pod_cache_size: int, namespace_cache_size: int,
                 workers: int, counters: Counters | None = None) -> None:
        self._factory = source_factory
        self._source: Source | None = None
        self._broken = False
        self._clock = clock
        self._pod_ttl = pod_ttl
        self._ns_ttl = namespace_ttl
        self._nf_ttl = not_found_ttl
        self._retry = error_retry_interval
        self._pods: LRUCache[PodKey, Entry[PodMeta]] = LRUCache(maxsize=pod_cache_size)
        self._nss: LRUCache[str, Entry[NamespaceMeta]] = LRUCache(maxsize=namespace_cache_size)
        self._inflight: dict[Any, threading.Event] = {}
        self._retry_at: dict[Any, float] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self.counters = counters or Counters()
        self.api_ok = True  # optimistic until a request fails
        self._stalled = False  # a wait ran out; cleared by the next answer
        self._failing_since: float | None = None

    # -- lifecycle --
    def start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._work, name=f"kubemeta-lookup-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        # Import the client and build it now, not when the first line arrives.
        self._queue.put(None)

    # -- the per-line path --
    def lookup(self, ref: PodRef, deadline: float) -> tuple[Entry[PodMeta] | None,
                                                             Entry[NamespaceMeta] | None]:
        pk = (ref.namespace, ref.pod)
        nk = ref.namespace
        now = self._clock()
        with self._lock:
            pe = self._pods.get(pk)
            ne = self._nss.get(nk)
            waits = []
            if pe is None or pe.fresh_until <= now:
                ev = self._want(("pod", pk), now)
                if pe is None and ev is not None:
                    waits.append(ev)
            if ne is None or ne.fresh_until <= now:
                ev = self._want(("ns", nk), now)
                if ne is None and ev is not None:
                    waits.append(ev)
        c = self.counters
        if pe is None:
            c.podcachemisses += 1
        else:
            c.podcachehits += 1
        if ne is None:
            c.namespacecachemisses += 1
        else:
            c.namespacecachehits += 1
        if not waits or not self.api_ok or self._stalled:
            return pe, ne
        for ev in waits:
            remaining = deadline - self._clock()
            if remaining <= 0 or not ev.wait(remaining):
                # An API that accepts and never answers is not "failing" until the
                # read timeout; one line paying the deadline is enough until then.
                self._stalled = True
                break
        with self._lock:
            return self._pods.get(pk), self._nss.get(nk)

    def _want(self, key: Any, now: float) -> threading.Event | None:
        """Queue a fetch of ``key`` unless one is running or it failed just now."""
        ev = self._inflight.get(key)
        if ev is not None:
            return ev
        if self._broken or self._retry_at.get(key, 0.0) > now:
            return None
        ev = threading.Event()
        self._inflight[key] = ev
        self._queue.put(key)
        return ev

    # -- the workers --
    def _work(self) -> None:
        while True:
            key = self._queue.get()
            try:
                self._run(key)
            except Exception:  # a worker must never die
                log.exception("lookup of %s failed unexpectedly", key, extra={"event": "bug"})
                with self._lock:
                    ev = self._inflight.pop(key, None)
                if ev is not None:
                    ev.set()

    def _ensure_source(self) -> Source | None:
        with self._lock:
            if self._source is not None or self._broken:
                return self._source
        try:
            src = self._factory()
        except ConfigError as e:
            log.error("cannot use the Kubernetes API: %s; answering with file-name fields only",
                      e, extra={"event": "config_error"})
            with self._lock:
                self._broken = True
                self._release_all()
            return None
        with self._lock:
            if self._source is None:
                self._source = src
            return self._source

    def _release_all(self) -> None:
        for ev in self._inflight.values():
            ev.set()
        self._inflight.clear()

    def _run(self, key: Any) -> None:
        src = self._ensure_source()
        if key is None or src is None:
            return
        kind, name = key
        try:
            if kind == "pod":
                value: Any = src.pod(*name)
            else:
                value = src.namespace(name)
        except ApiNotFound:
            self._store(key, None, self._nf_ttl)
            self._count(kind, "notfound")
            self._healthy()
        except ApiError as e:
            if isinstance(e, ApiUnauthorized):
                src.on_unauthorized()
            self._count(kind, "busy" if e.status == 429 else "error")
            self._failed(key, e)
        except ShapeError as e:
            self._count(kind, "error")
            self._failed(key, ApiError(f"unexpected answer: {e}", 200))
        else:
            self._store(key, value, self._pod_ttl if kind == "pod" else self._ns_ttl)
            self._count(kind, "success")
            self._healthy()

    def _count(self, kind: str, what: str) -> None:
        name = ("podmetadata" if kind == "pod" else "namespacemetadata") + what
        setattr(self.counters, name, getattr(self.counters, name) + 1)

    def _store(self, key: Any, value: Any, ttl: float) -> None:
        kind, name = key
        entry = Entry(value, self._clock() + ttl)
        self._stalled = False
        with self._lock:
            if kind == "pod":
                self._pods[name] = entry
            else:
                self._nss[name] = entry
            self._retry_at.pop(key, None)
            ev = self._inflight.pop(key, None)
        if ev is not None:
            ev.set()

    def _failed(self, key: Any, e: ApiError) -> None:
        now = self._clock()
        retry = max(self._retry, e.retry_after or 0.0)
        with self._lock:
            if len(self._retry_at) > 100000:
                self._retry_at.clear()
            self._retry_at[key] = now + retry
            ev = self._inflight.pop(key, None)
            was_ok = self.api_ok
            self.api_ok = False
            self._stalled = False
            if was_ok:
                self._failing_since = now
        if ev is not None:
            ev.set()
        if was_ok:
            log.warning("Kubernetes API unavailable: %s; serving cached metadata", e.reason,
                        extra={"event": "api_unavailable", "api_status": e.status})

    def _healthy(self) -> None:
        with self._lock:
            was_ok = self.api_ok
            self.api_ok = True
            since = self._failing_since
            self._failing_since = None
        if not was_ok and since is not None:
            log.warning("Kubernetes API recovered after %.0f s", self._clock() - since,
                        extra={"event": "api_recovered", "api_status": 200})

    # -- introspection --
    def wait_idle(self, timeout: float) -> bool:
        """Wait (real time) until no lookup is queued or running; False on timeout."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._inflight.values())
            if not pending:
                return True
            left = end - time.monotonic()
            if left <= 0 or not pending[0].wait(left):
                return False

    def sizes(self) -> tuple[int, int]:
        with self._lock:
            return len(self._pods), len(self._nss)
