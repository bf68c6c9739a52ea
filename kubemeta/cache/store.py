"""The metadata cache and the background lookups that fill it.

The per-line path calls ``lookup`` and never touches the network: a missing
or expired entry is queued (one request per object, however many lines ask)
and the caller waits for it only while the API is believed healthy, and only
until its deadline. What was known stays served: a failed refresh keeps the
last good entry, and a transient error is never cached as an answer. A 404
is, briefly (``not_found_ttl``).

Which request goes out when is the LookupScheduler's decision (breaker,
backoff, rate); this module is the thin threaded shell around it.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

from kubemeta import internal
from kubemeta.cache.policy import Backoff, BreakerState
from kubemeta.cache.scheduler import Change, LookupScheduler
from kubemeta.errors import ApiError, ApiNotFound, ApiUnauthorized, ConfigError
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta, ShapeError

log = logging.getLogger("kubemeta.cache.store")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A cached answer. ``value`` None means the API said 404."""

    value: T | None
    fresh_until: float


PodKey = tuple[str, str]


@dataclass(slots=True)
class Tombstone:
    """A deleted pod's last metadata, kept for the lines still to be read from its
    containers' logs, which name it by uid or container id, never by name alone."""

    entry: Entry[PodMeta]
    deleted_at: float
    last_line: float


@dataclass
class Counters:
    """mmkubernetes's counter names, then our own."""

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
    linesstale: int = 0          # served from metadata past its TTL
    linesfilenameonly: int = 0   # the pod was not known: file-name fields only
    linescri: int = 0            # CRI records unframed into log/stream/time
    linesdeletedpod: int = 0     # served with the metadata of a pod since deleted
    sinklines: int = 0           # omprog: lines the sink took
    sinkfailures: int = 0        # omprog: writes that failed and were answered with an error
    apirequests: Counter[str] = field(default_factory=Counter)  # by HTTP status, 0: none


@dataclass(frozen=True)
class StoreSettings:
    pod_ttl: float = 300.0
    namespace_ttl: float = 900.0
    not_found_ttl: float = 30.0
    error_retry_interval: float = 5.0
    pod_cache_size: int = 10000
    namespace_cache_size: int = 2000
    workers: int = 4
    breaker_threshold: int = 2
    backoff: Backoff = field(default_factory=Backoff)
    max_request_rate: float = 20.0
    request_burst: float = 20.0
    deleted_quiet: float = 300.0
    deleted_max_age: float = 3600.0
    deleted_max: int = 10000


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
                 settings: StoreSettings, counters: Counters | None = None) -> None:
        self._factory = source_factory
        self._source: Source | None = None
        self._broken = False
        self._clock = clock
        self._s = settings
        self._pods: LRUCache[PodKey, Entry[PodMeta]] = LRUCache(maxsize=settings.pod_cache_size)
        self._nss: LRUCache[str, Entry[NamespaceMeta]] = LRUCache(
            maxsize=settings.namespace_cache_size)
        self._inflight: dict[Hashable, threading.Event] = {}
        self._retry_at: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sched = LookupScheduler(now=clock(), threshold=settings.breaker_threshold,
                                      backoff=settings.backoff, rate=settings.max_request_rate,
                                      burst=settings.request_burst)
        self._busy = 0
        self._work: queue.SimpleQueue[Hashable | None] = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.lazy = False  # build the source only when a lookup first needs it
        self.counters = counters or Counters()
        self.api_ok = True      # the breaker is closed
        self._stalled = False   # a wait ran out; cleared by the next answer
        self.last_success: float | None = None
        self._outage: tuple[float, int, int] | None = None  # start, stale, file-name-only
        self._ready = threading.Event()  # the source is built (or cannot be)
        self._watched: dict[str, set[Any]] = {"pod": set(), "ns": set()}
        self._listing: dict[str, threading.Event] = {}  # first lists on their way
        self._deleted: dict[str, Tombstone] = {}     # by pod uid, oldest first
        self._deleted_cids: dict[str, str] = {}      # container id -> pod uid
        self._next_sweep = 0.0
        self.generation = 0  # moves on whenever what a snapshot would hold may have changed

    STARTUP_GRACE = 2.0

    # -- lifecycle --
    def start(self) -> None:
        threading.Thread(target=self._dispatch, name="kubemeta-dispatch", daemon=True).start()
        for i in range(self._s.workers):
            threading.Thread(target=self._work_loop, name=f"kubemeta-lookup-{i}",
                             daemon=True).start()

    def now(self) -> float:
        return self._clock()

    def poke(self) -> None:
        """Re-evaluate the schedule now (the clock moved)."""
        with self._wake:
            self._wake.notify_all()

    # -- the per-line path --
    def lookup(self, ref: PodRef, deadline: float, now: float | None = None
               ) -> tuple[Entry[PodMeta] | None, Entry[NamespaceMeta] | None]:
        pk = (ref.namespace, ref.pod)
        nk = ref.namespace
        if now is None:
            now = self._clock()
        with self._lock:
            grave = self._grave(ref) if self._deleted else None
            if grave is not None:
                grave.last_line = now
                pe: Entry[PodMeta] | None = grave.entry
                self.counters.linesdeletedpod += 1
            else:
                pe = self._pods.get(pk)
            ne = self._nss.get(nk)
            waits = []
            if grave is None and (pe is None or pe.fresh_until <= now):
                ev = self._want(("pod", pk), now, pe is None)
                if pe is None and ev is not None:
                    waits.append(ev)
            if ne is None or ne.fresh_until <= now:
                ev = self._want(("ns", nk), now, ne is None)
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
        if not self._ready.is_set():
            # Only in the first moments of a helper's life: building the client
            # (importing it) takes longer than a deadline, and is not the network.
            t0 = self._clock()
            self._ready.wait(self.STARTUP_GRACE)
            deadline += self._clock() - t0
        for ev in waits:
            remaining = deadline - self._clock()
            if remaining <= 0 or not ev.wait(remaining):
                # An API that accepts and never answers is not "failing" until the
                # read timeout; one line paying the deadline is enough until then.
                self._stalled = True
                break
        with self._lock:
            return (pe if grave is not None else self._pods.get(pk)), self._nss.get(nk)

    # -- deleted pods --
    def _grave(self, ref: PodRef) -> Tombstone | None:
        """The deleted pod this line is from, if any. Caller holds the lock."""
        uid = ref.pod_uid
        if uid is None and ref.container_id is not None:
            uid = self._deleted_cids.get(ref.container_id)
        return self._deleted.get(uid) if uid is not None else None

    def _bury(self, pod: PodMeta | None, now: float, deleted_at: float | None = None) -> None:
        """Caller holds the lock."""
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
        """Caller holds the lock."""
        grave = self._deleted.pop(uid, None) if uid is not None else None
        if grave is not None:
            self.generation += 1
        if grave is not None and grave.entry.value is not None:
            for cid in grave.entry.value.container_ids:
                if self._deleted_cids.get(cid) == uid:
                    del self._deleted_cids[cid]

    SWEEP_INTERVAL = 5.0

    def _sweep(self, now: float) -> None:
        """Forget deleted pods whose logs went quiet, or that were deleted too long ago.
        Caller holds the lock."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_INTERVAL
        quiet, max_age = self._s.deleted_quiet, self._s.deleted_max_age
        for uid, grave in list(self._deleted.items()):
            if now - grave.last_line > quiet or now - grave.deleted_at > max_age:
                self._unbury(uid)

    def deleted(self) -> int:
        with self._lock:
            return len(self._deleted)

    def _want(self, key: Hashable, now: float, urgent: bool) -> threading.Event | None:
        """Queue a fetch of ``key`` unless one is pending. Caller holds the lock."""
        ev = self._inflight.get(key)
        if ev is not None:
            return ev
        if urgent and isinstance(key, tuple):
            listing = self._listing.get(key[0])
            if listing is not None:
                return listing  # a list on its way brings it: no GET of its own
        if self._broken or self._retry_at.get(key, 0.0) > now:
            return None
        ev = threading.Event()
        self._inflight[key] = ev
        self._sched.add(key, urgent)
        self._wake.notify()
        return ev

    # -- the dispatcher: asks the scheduler, hands keys to free workers --
    def stop(self) -> None:
        """Let the dispatcher and the workers end (a request in flight finishes first)."""
        self.stopped.set()
        for _ in range(self._s.workers):
            self._work.put(None)
        with self._wake:
            self._wake.notify_all()

    def _dispatch(self) -> None:
        if self.lazy:
            # A warm start serves the known pods: import the client (half a second
            # of CPU, which would slow every reply meanwhile) only once a lookup
            # needs it.
            with self._wake:
                while not self.stopped.is_set() and self._sched.pending() == 0:
                    self._wake.wait(1.0)
        self._ensure_source()  # the slow client import, before any line needs it
        self._ready.set()
        while not self.stopped.is_set():
            try:
                self._dispatch_one()
            except Exception as e:  # the dispatcher must never die
                internal.report("the lookup dispatcher", e)
                time.sleep(1.0)

    def _dispatch_one(self) -> None:
        with self._wake:
            if self._busy >= self._s.workers:
                self._wake.wait(1.0)
                return
            now = self._clock()
            self._sweep(now)
            key, wake_at = self._sched.next(now)
            if key is None:
                # Capped, so a clock that jumps cannot leave a probe overdue for long.
                timeout = 1.0 if wake_at is None else min(1.0, max(0.0, wake_at - now))
                self._wake.wait(timeout)
                return
            self._busy += 1
        self._work.put(key)

    def _work_loop(self) -> None:
        while True:
            key = self._work.get()
            if key is None:
                return
            try:
                self._run(key)
            except Exception as e:  # a worker must never die
                internal.report("a lookup worker", e)
                with self._wake:
                    self._sched.dropped(key)
                    self._release(key)
            finally:
                with self._wake:
                    self._busy -= 1
                    self._wake.notify()

    def _ensure_source(self) -> Source | None:
        if self._source is not None or self._broken:
            return self._source
        try:
            self._source = self._factory()
        except Exception as e:  # ConfigError, or a client that cannot even be built
            if isinstance(e, ConfigError):
                log.error("cannot use the Kubernetes API: %s; answering with file-name fields "
                          "only", e, extra={"event": "config_error"})
            else:
                internal.report("building the API client", e)
            with self._lock:
                self._broken = True
                for ev in self._inflight.values():
                    ev.set()
                self._inflight.clear()
        return self._source

    def _fetch(self, src: Source, key: Any) -> Any:
        kind, name = key
        try:
            return src.pod(*name) if kind == "pod" else src.namespace(name)
        except ApiUnauthorized:
            # A rotated token or certificate: re-read the files and try once more.
            src.on_unauthorized()
            return src.pod(*name) if kind == "pod" else src.namespace(name)

    def _run(self, key: Any) -> None:
        src = self._source
        if src is None:
            with self._wake:
                self._sched.dropped(key)
                self._release(key)
            return
        kind = key[0]
        try:
            value = self._fetch(src, key)
        except ApiNotFound:
            self.counters.apirequests["404"] += 1
            self._count(kind, "notfound")
            self._answered(key, None, self._s.not_found_ttl)
        except ApiError as e:
            self.counters.apirequests[str(e.status)] += 1
            self._count(kind, "busy" if e.status == 429 else "error")
            self._failed(key, e)
        except ShapeError as e:
            self.counters.apirequests["200"] += 1
            self._count(kind, "error")
            self._unusable(key, str(e))
        except Exception as e:  # a bug, or a library kubemeta cannot work with
            internal.report("a lookup", e)
            self._count(kind, "error")
            # Paced like a failure (backoff, breaker), so lines stop waiting for it.
            self._failed(key, ApiError(f"internal error: {type(e).__name__}"), internal=True)
        else:
            self.counters.apirequests["200"] += 1
            self._count(kind, "success")
            self._answered(key, value, self._s.pod_ttl if kind == "pod" else self._s.namespace_ttl)

    def _count(self, kind: str, what: str) -> None:
        name = ("podmetadata" if kind == "pod" else "namespacemetadata") + what
        setattr(self.counters, name, getattr(self.counters, name) + 1)

    def _release(self, key: Hashable) -> None:
        ev = self._inflight.pop(key, None)
        if ev is not None:
            ev.set()

    def _answered(self, key: Any, value: Any, ttl: float) -> None:
        now = self._clock()
        entry = Entry(value, now + ttl)
        with self._wake:
            cache: Any = self._pods if key[0] == "pod" else self._nss
            if key[0] == "pod":
                old = cache.get(key[1])
                if value is None and old is not None:
                    self._bury(old.value, now)  # deleted since we last asked
                elif value is not None and self._deleted:
                    self._unbury(value.uid)
            self.generation += 1
            if key[1] in self._watched[key[0]] and key[1] in cache:
                pass  # the watch is the fresher source
            elif key[0] == "pod":
                self._pods[key[1]] = entry
            else:
                self._nss[key[1]] = entry
            self._retry_at.pop(key, None)
            self._release(key)
            change = self._sched.answered(key)
            self.api_ok = True
            self._stalled = False
            self.last_success = now
            pending = self._sched.pending()
            self._wake.notify()
        if change is Change.RECOVERED:
            self._log_recovery(now, pending)

    def _failed(self, key: Any, e: ApiError, internal: bool = False) -> None:
        now = self._clock()
        with self._wake:
            had = (self._pods.get(key[1]) if key[0] == "pod" else self._nss.get(key[1]))
            change = self._sched.failed(key, now, e.reason, e.status, e.retry_after,
                                        urgent=had is None)
            self.api_ok = self._sched.breaker.state is BreakerState.CLOSED
            self._stalled = False
            if change is Change.OPENED:
                # Every line waiting on a lookup stops waiting now; the keys stay queued.
                for k, ev in list(self._inflight.items()):
                    ev.set()
                    self._inflight[k] = threading.Event()
            self._wake.notify()
        if change is Change.OPENED and not internal:  # internal.report said what it is
            c = self.counters
            self._outage = (now, c.linesstale, c.linesfilenameonly)
            log.warning("Kubernetes API unavailable: %s; serving cached metadata", e.reason,
                        extra={"event": "api_unavailable", "api_status": e.status})

    def _unusable(self, key: Any, why: str) -> None:
        """An answer about one object that makes no sense: that object waits a while."""
        now = self._clock()
        with self._wake:
            if len(self._retry_at) > 100000:
                self._retry_at.clear()
            self._retry_at[key] = now + self._s.error_retry_interval
            self._sched.dropped(key)
            self._release(key)
        log.warning("unusable answer for %s %s: %s", key[0], key[1], why,
                    extra={"event": "api_bad_answer"})

    def _log_recovery(self, now: float, pending: int) -> None:
        start, stale0, fn0 = self._outage or (now, self.counters.linesstale,
                                              self.counters.linesfilenameonly)
        self._outage = None
        c = self.counters
        log.warning("Kubernetes API recovered after %.0f s: %d lines served stale, %d with "
                    "file-name fields only, %d lookups pending", now - start,
                    c.linesstale - stale0, c.linesfilenameonly - fn0, pending,
                    extra={"event": "api_recovered", "api_status": 200,
                           "outage_seconds": round(now - start, 1)})

    # -- fed by a watch (source: watch) --
    # A watched entry is fresh for as long as it is watched (its fresh_until is
    # infinite): the watch delivers its changes, so no line triggers a GET for
    # it, and a GET answer never overwrites it. A watch that fails leaves its
    # entries as they are: served, as the last thing known.
    def put_watched(self, kind: str, key: Any, value: Any) -> None:
        with self._wake:
            cache: Any = self._pods if kind == "pod" else self._nss
            old = cache.get(key)
            if old is None or old.value != value or key not in self._watched[kind]:
                cache[key] = Entry(value, math.inf)
                self.generation += 1
            if kind == "pod" and self._deleted:
                self._unbury(value.uid)  # not deleted after all (a relist has it)
            self._watched[kind].add(key)
            self._release((kind, key))

    def forget_watched(self, kind: str, key: Any) -> None:
        """The object was deleted: a pod is kept for its unread lines (see _bury), a
        namespace serves its last lines for a TTL."""
        now = self._clock()
        with self._wake:
            cache: Any = self._pods if kind == "pod" else self._nss
            self._watched[kind].discard(key)
            old = cache.get(key)
            if old is None:
                return
            if kind == "pod" and old.value is not None and old.value.uid is not None:
                # Its lines find it by uid or container id from now on; by name,
                # they would find whichever pod takes the name next.
                self._bury(old.value, now)
                del cache[key]
            else:
                ttl = self._s.pod_ttl if kind == "pod" else self._s.namespace_ttl
                cache[key] = Entry(old.value, now + ttl)

    def replace_watched(self, kind: str, entries: dict[Any, Any]) -> None:
        """A complete list: what was watched and is not in it was deleted meanwhile."""
        with self._wake:
            gone = self._watched[kind] - entries.keys()
        for key in gone:
            self.forget_watched(kind, key)
        for key, value in entries.items():
            self.put_watched(kind, key, value)
        self.list_over(kind)

    def expect_list(self, kind: str) -> None:
        """A first list of ``kind`` is on its way: lookups of unknown objects wait
        for it (within their deadline) rather than each cost a GET."""
        with self._lock:
            self._listing.setdefault(kind, threading.Event())

    def list_over(self, kind: str) -> None:
        """The list came (or failed: unknown objects are fetched one by one again)."""
        with self._lock:
            ev = self._listing.pop(kind, None)
            if ev is not None:
                self._stalled = False  # as after any answer
        if ev is not None:
            ev.set()

    # -- helpers sharing one view (see sharing) --
    def wait_ready(self, timeout: float) -> bool:
        """Until the source is built (a lazy store builds it only when needed)."""
        return self.lazy or self._ready.wait(timeout)

    def wait_for(self, kind: str, key: Any, deadline: float) -> Entry[Any] | None:
        """One object's entry, fetched if it is not fresh, waiting at most until
        ``deadline`` (the leader answering a follower). None: not known."""
        now = self._clock()
        cache: Any = self._pods if kind == "pod" else self._nss
        with self._lock:
            entry = cache.get(key)
            ev = None
            if entry is None or entry.fresh_until <= now:
                ev = self._want((kind, key), now, entry is None)
        if entry is None and ev is not None and self.api_ok:
            if not self._ready.is_set():
                self._ready.wait(self.STARTUP_GRACE)
            ev.wait(max(0.0, deadline - self._clock()))
            with self._lock:
                entry = cache.get(key)
        return entry  # type: ignore[no-any-return]

    def forget_known(self, before: float) -> None:
        """Drop what is known (not the 404s) from answers received before ``before``:
        a follower keeps what it asked the leader only until the leader's view
        has it, never a copy of the view. (An answer came ``ttl`` before its
        entry goes stale: only answers make entries in a follower's store.)"""
        with self._wake:
            caches: list[tuple[Any, float]] = [(self._pods, self._s.pod_ttl),
                                               (self._nss, self._s.namespace_ttl)]
            for cache, ttl in caches:
                for key, entry in list(cache.items()):
                    if entry.value is not None and entry.fresh_until - ttl <= before:
                        del cache[key]

    def refresh(self, kind: str, key: Any) -> None:
        """Ask for ``key`` in the background unless a fresh answer is here already
        (a follower whose view of it went stale asks the leader to refresh it)."""
        now = self._clock()
        cache: Any = self._pods if kind == "pod" else self._nss
        with self._lock:
            entry = cache.get(key)
            if entry is None or entry.fresh_until <= now:
                self._want((kind, key), now, False)

    def shared(self) -> tuple[list[tuple[PodKey, PodMeta, float]],
                              list[tuple[str, NamespaceMeta, float]],
                              list[tuple[PodMeta, float]]]:
        """What a leader shares: the known entries with when they go stale, and
        the deleted pods with when they were deleted (this store's clock)."""
        with self._lock:
            pods = [(k, e.value, e.fresh_until) for k, e in list(self._pods.items())
                    if e.value is not None]
            nss = [(k, e.value, e.fresh_until) for k, e in list(self._nss.items())
                   if e.value is not None]
            deleted = [(g.entry.value, g.deleted_at) for g in self._deleted.values()
                       if g.entry.value is not None]
        return pods, nss, deleted

    # -- the warm-start snapshot --
    def export(self, now: float) -> tuple[list[tuple[PodKey, PodMeta]],
                                          list[tuple[str, NamespaceMeta]],
                                          list[tuple[PodMeta, float]]]:
        """What is known (not the 404s), and the deleted pods with their ages."""
        with self._lock:
            pods = [(k, e.value) for k, e in list(self._pods.items()) if e.value is not None]
            nss = [(k, e.value) for k, e in list(self._nss.items()) if e.value is not None]
            deleted = [(g.entry.value, now - g.deleted_at) for g in self._deleted.values()
                       if g.entry.value is not None]
        return pods, nss, deleted

    def preload(self, pods: list[tuple[PodKey, PodMeta]], nss: list[tuple[str, NamespaceMeta]],
                deleted: list[tuple[PodMeta, float]], spread: Callable[[], float]) -> None:
        """Seed the caches (never over what is already known): served at once, and
        refreshed in the background after ``spread()`` times their TTL."""
        now = self._clock()
        with self._wake:
            for key, pod in pods[-self._s.pod_cache_size:]:
                if key not in self._pods:
                    self._pods[key] = Entry(pod, now + spread() * self._s.pod_ttl)
            for name, ns in nss[-self._s.namespace_cache_size:]:
                if name not in self._nss:
                    self._nss[name] = Entry(ns, now + spread() * self._s.namespace_ttl)
            for pod, age in deleted:
                if age < self._s.deleted_max_age and pod.uid not in self._deleted:
                    self._bury(pod, now, now - age)
            self.generation += 1

    def watched(self, kind: str) -> int:
        with self._lock:
            return len(self._watched[kind])

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
            if left <= 0:
                return False
            pending[0].wait(min(left, 0.05))

    def sizes(self) -> tuple[int, int]:
        with self._lock:
            return len(self._pods), len(self._nss)

    def pending(self) -> int:
        with self._lock:
            return self._sched.pending()

    def breaker_state(self) -> BreakerState:
        return self._sched.breaker.state
