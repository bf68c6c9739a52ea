"""The requests behind the cache: one per wanted object however many lines
want it, paced by the LookupScheduler (breaker, probes, rate), run by a pool
of workers; each answer goes into the cache rules under the store's lock.

Owned by the store (store.py), which shares its lock with it. A line never
waits here on the network: it gets an Event to wait on, within its deadline.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from kubemeta import internal
from kubemeta.cache.counters import Counters
from kubemeta.cache.policy import Breaker, BreakerState, ProbeDelay
from kubemeta.cache.rules import Caches
from kubemeta.cache.scheduler import Change, LookupScheduler
from kubemeta.clock import Clock
from kubemeta.errors import ApiError, ApiNotFound, ApiUnauthorized, ConfigError, ShapeError
from kubemeta.kinds import Kind
from kubemeta.model.schema import NamespaceMeta, PodMeta

log = logging.getLogger("kubemeta.cache.store")


@dataclass(frozen=True)
class LookupSettings:
    error_retry_interval: float  # an object whose answer made no sense waits this long
    workers: int
    breaker_threshold: int
    probe: ProbeDelay  # how an open breaker probes
    max_request_rate: float
    request_burst: float


class Fetcher:
    """What the lookups ask for metadata: two GETs returning shaped metadata (the
    API, the kubelet, or a follower's leader)."""

    def pod(self, namespace: str, name: str) -> PodMeta:
        raise NotImplementedError

    def namespace(self, name: str) -> NamespaceMeta:
        raise NotImplementedError

    def on_unauthorized(self) -> None:
        """Credentials were rejected: re-read them before the next request."""


class Lookups:
    STARTUP_GRACE = 2.0

    def __init__(self, caches: Caches, lock: threading.Condition, clock: Clock,
                 settings: LookupSettings, counters: Counters, stopped: threading.Event) -> None:
        self._caches = caches
        self._wake = lock
        self._clock = clock
        self._s = settings
        self.counters = counters
        self.stopped = stopped
        self._fetcher: Fetcher | None = None
        self._broken = False
        self._inflight: dict[Hashable, threading.Event] = {}
        self._retry_at: dict[Hashable, float] = {}
        self._sched = LookupScheduler(now=clock(), threshold=settings.breaker_threshold,
                                      pace=settings.probe, rate=settings.max_request_rate,
                                      burst=settings.request_burst)
        self._busy = 0
        self._work: queue.SimpleQueue[Hashable | None] = queue.SimpleQueue()
        self.lazy = False  # build the fetcher only when a lookup first needs it
        self.api_ok = True      # the breaker is closed
        self.stalled = False    # a wait ran out; cleared by the next answer
        self.last_success: float | None = None
        self.last_error: str | None = None  # the reason of the last failed lookup
        self.on_recovered: Callable[[], None] | None = None  # the breaker closed again
        self._outage: tuple[float, int, int] | None = None  # start, stale, file-name-only
        self.ready = threading.Event()  # the fetcher is built (or cannot be)
        self._listing: dict[str, threading.Event] = {}  # first lists on their way

    def start(self, fetcher: Callable[[], Fetcher]) -> None:
        threading.Thread(target=self._dispatch, args=(fetcher,), name="kubemeta-dispatch",
                         daemon=True).start()
        for i in range(self._s.workers):
            threading.Thread(target=self._work_loop, name=f"kubemeta-lookup-{i}",
                             daemon=True).start()

    def want(self, key: Hashable, now: float, urgent: bool) -> threading.Event | None:
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
        """Let the workers end (a request in flight finishes first); the caller
        set ``stopped``."""
        for _ in range(self._s.workers):
            self._work.put(None)
        with self._wake:
            self._wake.notify_all()

    def _dispatch(self, fetcher: Callable[[], Fetcher]) -> None:
        if self.lazy:
            # A warm start serves the known pods: import the client (half a second
            # of CPU, which would slow every reply meanwhile) only once a lookup
            # needs it.
            with self._wake:
                while not self.stopped.is_set() and self._sched.pending() == 0:
                    self._wake.wait(1.0)
        self._build(fetcher)  # the slow client import, before any line needs it
        self.ready.set()
        internal.supervise("the lookup dispatcher", self._dispatch_one, self.stopped)

    def _dispatch_one(self) -> None:
        with self._wake:
            if self._busy >= self._s.workers:
                self._wake.wait(1.0)
                return
            now = self._clock()
            self._caches.sweep(now)
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
                    self.release(key)
            finally:
                with self._wake:
                    self._busy -= 1
                    self._wake.notify()

    def _build(self, make: Callable[[], Fetcher]) -> None:
        try:
            self._fetcher = make()
        except Exception as e:  # ConfigError, or a client that cannot even be built
            if isinstance(e, ConfigError):
                log.error("cannot use the Kubernetes API: %s; answering with file-name fields "
                          "only", e, extra={"event": "config_error"})
            else:
                internal.report("building the API client", e)
            with self._wake:
                self._broken = True
                for ev in self._inflight.values():
                    ev.set()
                self._inflight.clear()

    @staticmethod
    def _fetch(fetcher: Fetcher, key: Any) -> Any:
        kind, name = key
        try:
            return fetcher.pod(*name) if kind == Kind.POD else fetcher.namespace(name)
        except ApiUnauthorized:
            # A rotated token or certificate: re-read the files and try once more.
            fetcher.on_unauthorized()
            return fetcher.pod(*name) if kind == Kind.POD else fetcher.namespace(name)

    def _run(self, key: Any) -> None:
        fetcher = self._fetcher
        if fetcher is None:
            with self._wake:
                self._sched.dropped(key)
                self.release(key)
            return
        kind = key[0]
        try:
            value = self._fetch(fetcher, key)
        except ApiNotFound:
            self.counters.apirequests["get.404"] += 1
            self._count(kind, "notfound")
            self._answered(key, None)
        except ApiError as e:
            self.counters.apirequests[f"get.{e.status}"] += 1
            self._count(kind, "busy" if e.status == 429 else "error")
            self._failed(key, e)
        except ShapeError as e:
            self.counters.apirequests["get.200"] += 1
            self._count(kind, "error")
            self._unusable(key, str(e))
        except Exception as e:  # a bug, or a library kubemeta cannot work with
            internal.report("a lookup", e)
            self._count(kind, "error")
            # Paced like a failure (backoff, breaker), so lines stop waiting for it.
            self._failed(key, ApiError(f"internal error: {type(e).__name__}"), internal=True)
        else:
            self.counters.apirequests["get.200"] += 1
            self._count(kind, "success")
            self._answered(key, value)

    def _count(self, kind: str, what: str) -> None:
        name = ("podmetadata" if kind == Kind.POD else "namespacemetadata") + what
        setattr(self.counters, name, getattr(self.counters, name) + 1)

    def release(self, key: Hashable) -> None:
        ev = self._inflight.pop(key, None)
        if ev is not None:
            ev.set()

    def _answered(self, key: Any, value: Any) -> None:
        now = self._clock()
        with self._wake:
            self._caches.answered(key[0], key[1], value, now)
            self._retry_at.pop(key, None)
            self.release(key)
            change = self._sched.answered(key)
            self.api_ok = True
            self.stalled = False
            self.last_success = now
            pending = self._sched.pending()
            self._wake.notify()
        if change is Change.RECOVERED:
            self._log_recovery(now, pending)
            if self.on_recovered is not None:
                self.on_recovered()

    def _failed(self, key: Any, e: ApiError, internal: bool = False) -> None:
        now = self._clock()
        self.last_error = e.reason
        with self._wake:
            had = self._caches.entry(key[0], key[1])
            change = self._sched.failed(key, now, e.reason, e.status, e.retry_after,
                                        urgent=had is None)
            self.api_ok = self._sched.breaker.state is BreakerState.CLOSED
            self.stalled = False
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
            self.release(key)
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

    def expect_list(self, kind: str) -> None:
        """A first list of ``kind`` is on its way: lookups of unknown objects wait
        for it (within their deadline) rather than each cost a GET."""
        with self._wake:
            self._listing.setdefault(kind, threading.Event())

    def list_over(self, kind: str) -> None:
        """The list came (or failed: unknown objects are fetched one by one again)."""
        with self._wake:
            ev = self._listing.pop(kind, None)
            if ev is not None:
                self.stalled = False  # as after any answer
        if ev is not None:
            ev.set()

    def wait_ready(self, timeout: float) -> bool:
        """Until the fetcher is built (a lazy store builds it only when needed)."""
        return self.lazy or self.ready.wait(timeout)

    def probe_now(self, now: float) -> None:
        """The API answers another way (a watch): an open breaker probes now.
        Caller holds the lock."""
        self._sched.probe_now(now)

    def inflight(self) -> list[threading.Event]:
        """Caller holds the lock."""
        return list(self._inflight.values())

    def pending(self) -> int:
        """Caller holds the lock."""
        return self._sched.pending()

    def breaker_state(self) -> BreakerState:
        return self._sched.breaker.state

    def breaker(self) -> Breaker:
        """The breaker as it is now: an immutable value."""
        return self._sched.breaker
