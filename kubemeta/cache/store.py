"""The store: what every line is served from. A thin threaded shell that holds
one lock around the cache rules (rules.py) and the lookups behind them
(lookups.py); it decides nothing that those decide.

The per-line path calls ``lookup`` and never touches the network: a missing
or expired entry is wanted (one request per object, however many lines ask)
and the caller waits for it only while the API is believed healthy, and only
until its deadline. What was known stays served: a failed refresh keeps the
last good entry, and a transient error is never cached as an answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubemeta.cache.counters import Counters, FeedHealth
from kubemeta.cache.lookups import Fetcher, Lookups, LookupSettings
from kubemeta.cache.policy import Breaker, BreakerState
from kubemeta.cache.rules import Caches, CacheSettings, Entry, Exported, PodKey, Shared
from kubemeta.clock import SYSTEM, Clock
from kubemeta.kinds import Kind
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta

log = logging.getLogger("kubemeta.cache.store")

__all__ = ["Counters", "Entry", "Fetcher", "MetadataStore", "StoreSettings"]


class Fallback(Protocol):
    def ask(self) -> threading.Event:
        """Have the kubelet's pods put in as stopgaps; set once they are."""

    def api_back(self) -> None:
        """The API answers again."""


@dataclass(frozen=True)
class StoreSettings:
    cache: CacheSettings
    lookups: LookupSettings


class MetadataStore:
    STARTUP_GRACE = Lookups.STARTUP_GRACE

    def __init__(self, *, clock: Clock, settings: StoreSettings,
                 counters: Counters | None = None) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._caches = Caches(settings.cache)
        self.stopped = threading.Event()
        self.counters = counters or Counters()
        # What feeds this store besides lookups, by resource ("pods"): its
        # watches, which say here how they are (kube.storefeed).
        self.feeds: dict[str, FeedHealth] = {}
        # kubelet_fallback: asks the node's kubelet for its pods (kube.fallback)
        # while the API fails; None: not configured.
        self.fallback: Fallback | None = None
        self._lookups = Lookups(self._caches, self._lock, clock, settings.lookups,
                                self.counters, self.stopped)
        self._lookups.on_recovered = self.api_maybe_back
        # The watches' backoffs wait here, not on the lookups' lock, whose
        # single notifications are meant for the dispatcher.
        self._revival = threading.Condition()
        self._revivals = 0  # how often the API was seen working again after failing

    # -- lifecycle --
    def start(self, fetcher: Callable[[], Fetcher], lazy: bool = False) -> None:
        """Start the lookups. ``fetcher`` is called once, in the dispatcher (the
        client's import is slow), and may feed this store (the kubelet's list
        does). ``lazy``: only once a lookup first needs it (a warm start)."""
        self._lookups.lazy = lazy
        self._lookups.start(fetcher)

    def stop(self) -> None:
        """Let the lookups end (a request in flight finishes first)."""
        self.stopped.set()
        self._lookups.stop()
        with self._revival:
            self._revival.notify_all()

    def now(self) -> float:
        return self._clock()

    @property
    def generation(self) -> int:
        """Moves on whenever what a snapshot would hold may have changed."""
        return self._caches.generation

    @property
    def api_ok(self) -> bool:
        """The breaker is closed."""
        return self._lookups.api_ok

    @property
    def last_success(self) -> float | None:
        """When the API last answered: a lookup, a list, or a watch's event or
        bookmark (a quiet, healthy node hears bookmarks)."""
        heard = [h.last_heard for h in list(self.feeds.values()) if h.last_heard is not None]
        last = self._lookups.last_success
        return max([*heard, last]) if last is not None else max(heard, default=None)

    @property
    def last_error(self) -> str | None:
        """Why the last lookup failed, or the last list or watch; None: none failed."""
        errors = [h.last_error for h in list(self.feeds.values()) if h.last_error]
        return self._lookups.last_error or (errors[0] if errors else None)

    def poke(self) -> None:
        """Re-evaluate the schedule now (the clock moved)."""
        with self._lock:
            self._lock.notify_all()

    # -- the per-line path --
    def lookup(self, ref: PodRef, deadline: float, now: float | None = None
               ) -> tuple[Entry[PodMeta] | None, Entry[NamespaceMeta] | None]:
        pk = (ref.namespace, ref.pod)
        if now is None:
            now = self._clock()
        lookups = self._lookups
        with self._lock:
            seen = self._caches.line(ref, now)
            waits = []
            if seen.pod_due:
                ev = lookups.want((Kind.POD, pk), now, seen.pod is None)
                if seen.pod is None and ev is not None:
                    waits.append(ev)
            if seen.ns_due:
                ev = lookups.want((Kind.NS, ref.namespace), now, seen.ns is None)
                if seen.ns is None and ev is not None:
                    waits.append(ev)
        c = self.counters
        if seen.deleted:
            c.linesdeletedpod += 1
        if seen.pod is None:
            c.podcachemisses += 1
        else:
            c.podcachehits += 1
        if seen.ns is None:
            c.namespacecachemisses += 1
        else:
            c.namespacecachehits += 1
        stand_in = self._kubelet_for(seen.pod is None and not seen.deleted)
        if stand_in is not None:
            stand_in.wait(max(0.0, deadline - self._clock()))
            with self._lock:
                return self._caches.pods.get(pk), self._caches.nss.get(ref.namespace)
        if not waits or not lookups.api_ok or lookups.stalled:
            return seen.pod, seen.ns
        if not lookups.ready.is_set():
            # Only in the first moments of a helper's life: building the client
            # (importing it) takes longer than a deadline, and is not the network.
            t0 = self._clock()
            lookups.ready.wait(self.STARTUP_GRACE)
            deadline += self._clock() - t0
        for ev in waits:
            remaining = deadline - self._clock()
            if remaining <= 0 or not ev.wait(remaining):
                # An API that accepts and never answers is not "failing" until the
                # read timeout; one line paying the deadline is enough until then.
                lookups.stalled = True
                break
        with self._lock:
            pod = seen.pod if seen.deleted else self._caches.pods.get(pk)
            return pod, self._caches.nss.get(ref.namespace)

    def api_maybe_back(self) -> None:
        """Lookups or a watch work again: what waits out a backoff tries now (the
        watches, the breaker's next probe), and, if nothing fails any more, the
        kubelet's stand-in is over."""
        with self._lock:
            self._lookups.probe_now(self._clock())
            self._lock.notify_all()
        with self._revival:
            self._revivals += 1
            self._revival.notify_all()
        if self.fallback is not None and not self._failing():
            self.fallback.api_back()

    def retry_wait(self, seconds: float) -> bool:
        """A failed watch's backoff (real seconds: it is slept): over after
        ``seconds``, or as soon as the API is seen working again another way, or
        when the store stops (then True)."""
        with self._revival:
            seen = self._revivals
            self._revival.wait_for(lambda: self.stopped.is_set() or self._revivals != seen,
                                   seconds)
        return self.stopped.is_set()

    def _kubelet_for(self, unknown: bool) -> threading.Event | None:
        """kubelet_fallback: for a pod the store does not know while the API fails,
        the kubelet's list under way; None otherwise (a known pod costs nothing)."""
        if not unknown or self.fallback is None or not self._failing():
            return None
        return self.fallback.ask()

    def _failing(self) -> bool:
        """The API is failing: lookups' breaker open, or a watch down after a
        failure (one still waiting for its first list is not an outage)."""
        return not self._lookups.api_ok or any(
            not h.up and h.last_error is not None for h in list(self.feeds.values()))

    def node_labels(self, node: str, labels: dict[str, str]) -> None:
        """extra_fields' node_labels: the watched node's labels, for its pods."""
        with self._lock:
            changed = self._caches.node_labels(node, labels)
        if changed:
            log.info("node %s: labels %s", node, ", ".join(f"{k}={v}" for k, v in
                                                         sorted(labels.items())) or "none kept",
                     extra={"event": "node_labels"})

    def stopgap(self, pods: dict[PodKey, PodMeta]) -> int:
        """Pods the kubelet has, for those the store does not know; how many were."""
        now = self._clock()
        with self._lock:
            return sum(self._caches.stopgap(key, meta, now) for key, meta in pods.items())

    def peek(self, ref: PodRef) -> tuple[Entry[PodMeta] | None, Entry[NamespaceMeta] | None]:
        """What a line of ``ref`` would be served now, counting nothing and waiting
        for nothing; what is missing or due is asked for in the background. Table
        mode asks for each log file there is: a deleted pod's tombstone lives on
        while its file does, as lines of it may still be unread (deleted_pod_max_age
        bounds it still)."""
        now = self._clock()
        with self._lock:
            seen = self._caches.line(ref, now)
            if seen.pod_due:
                self._lookups.want((Kind.POD, (ref.namespace, ref.pod)), now, False)
            if seen.ns_due:
                self._lookups.want((Kind.NS, ref.namespace), now, False)
        self._kubelet_for(seen.pod is None and not seen.deleted)  # in the next table
        return seen.pod, seen.ns

    # -- fed by a watch (source: watch) or the kubelet's list; see rules.py --
    def put_watched(self, kind: str, key: Any, value: Any) -> None:
        with self._lock:
            self._caches.put_watched(kind, key, value)
            self._lookups.release((kind, key))

    def forget_watched(self, kind: str, key: Any) -> None:
        now = self._clock()
        with self._lock:
            self._caches.forget_watched(kind, key, now)

    def replace_watched(self, kind: str, entries: dict[Any, Any]) -> None:
        """A complete list: what was watched and is not in it was deleted meanwhile."""
        now = self._clock()
        with self._lock:
            for key in self._caches.unlisted(kind, entries):
                self._caches.forget_watched(kind, key, now)
            for key, value in entries.items():
                self._caches.put_watched(kind, key, value)
                self._lookups.release((kind, key))
        self.list_over(kind)

    def expect_list(self, kind: str) -> None:
        """A first list of ``kind`` is on its way: lookups of unknown objects wait
        for it (within their deadline) rather than each cost a GET."""
        self._lookups.expect_list(kind)

    def list_over(self, kind: str) -> None:
        """The list came (or failed: unknown objects are fetched one by one again)."""
        self._lookups.list_over(kind)

    def watched(self, kind: str) -> int:
        with self._lock:
            return self._caches.watched(kind)

    # -- helpers sharing one view (see sharing) --
    def wait_ready(self, timeout: float) -> bool:
        """Until the fetcher is built (a lazy store builds it only when needed)."""
        return self._lookups.wait_ready(timeout)

    def wait_for(self, kind: str, key: Any, deadline: float) -> Entry[Any] | None:
        """One object's entry, fetched if it is not fresh, waiting at most until
        ``deadline`` (the leader answering a follower). None: not known."""
        now = self._clock()
        lookups = self._lookups
        with self._lock:
            entry = self._caches.entry(kind, key)
            ev = None
            if self._caches.is_due(entry, now):
                ev = lookups.want((kind, key), now, entry is None)
        stand_in = self._kubelet_for(entry is None and kind == Kind.POD)
        if stand_in is not None:
            stand_in.wait(max(0.0, deadline - self._clock()))
            with self._lock:
                return self._caches.entry(kind, key)
        if entry is None and ev is not None and lookups.api_ok:
            if not lookups.ready.is_set():
                lookups.ready.wait(self.STARTUP_GRACE)
            ev.wait(max(0.0, deadline - self._clock()))
            with self._lock:
                entry = self._caches.entry(kind, key)
        return entry

    def forget_known(self, before: float) -> None:
        """A follower keeps what it asked the leader only until the leader's view
        has it, never a copy of the view (rules.Caches.forget_known)."""
        with self._lock:
            self._caches.forget_known(before)

    def refresh(self, kind: str, key: Any) -> None:
        """Ask for ``key`` in the background unless a fresh answer is here already
        (a follower whose view of it went stale asks the leader to refresh it)."""
        now = self._clock()
        with self._lock:
            if self._caches.is_due(self._caches.entry(kind, key), now):
                self._lookups.want((kind, key), now, False)

    def shared(self) -> Shared:
        """What a leader shares (this store's clock)."""
        with self._lock:
            return self._caches.shared()

    # -- the warm-start snapshot --
    def export(self, now: float) -> Exported:
        with self._lock:
            return self._caches.export(now)

    def preload(self, pods: list[tuple[PodKey, PodMeta]], nss: list[tuple[str, NamespaceMeta]],
                deleted: list[tuple[PodMeta, float]], spread: Callable[[], float]) -> None:
        now = self._clock()
        with self._lock:
            self._caches.preload(pods, nss, deleted, now, spread)

    # -- introspection --
    def wait_idle(self, timeout: float) -> bool:
        """Until no lookup is queued or running; False when ``timeout`` runs out
        (real seconds: a bound on a wait, never the store's time)."""
        end = SYSTEM() + timeout
        while True:
            with self._lock:
                pending = self._lookups.inflight()
            if not pending:
                return True
            left = end - SYSTEM()
            if left <= 0:
                return False
            pending[0].wait(min(left, 0.05))

    def sizes(self) -> tuple[int, int]:
        with self._lock:
            return len(self._caches.pods), len(self._caches.nss)

    def deleted(self) -> int:
        with self._lock:
            return self._caches.deleted()

    def pending(self) -> int:
        with self._lock:
            return self._lookups.pending()

    def breaker_state(self) -> BreakerState:
        return self._lookups.breaker_state()

    def breaker(self) -> Breaker:
        return self._lookups.breaker()
