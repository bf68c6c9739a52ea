"""Keep a view of one kind of object current: list, then watch from the list's
resourceVersion, as client-go's reflector does.

- A watch that ends cleanly (its ``timeoutSeconds``) is resumed from the last
  resourceVersion seen, bookmarks included, with no new list.
- 410 Gone (the version left the server's history) means list again, at once.
- Any other failure (refused, 403, 5xx, a cut stream, a stream silent past the
  inactivity timeout, nonsense on the wire) marks the view stale, waits a
  jittered, capped backoff, and tries again: a resumed watch if there is a
  version to resume from, a list otherwise. The view keeps serving throughout.
- The first list waits a random part of ``start_jitter``, so that a fleet whose
  rsyslogs restart together does not list all at once.

The loop cannot die: whatever ``step`` raises is logged and retried. The I/O
(``lister``, ``watcher``) and time (``sleep``, ``rng``) are injected, so outages
are tested in fake time.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kubemeta import internal
from kubemeta.cache.policy import Backoff
from kubemeta.errors import ApiError, ApiGone, ApiTooNew, ApiUnreachable
from kubemeta.wire.listproto import Listing
from kubemeta.wire.watchproto import WatchDecoder, WatchEvent

log = logging.getLogger("kubemeta.kube.reflector")


class Feed(Protocol):
    """Where a reflector delivers what it sees (a StoreFeed, in the store)."""

    def replace(self, items: Iterable[dict[str, Any]]) -> object:
        """A complete list: everything else is gone; the feed is in sync. Nothing
        is applied if the iteration raises."""

    def opened(self) -> None:
        """A watch's answer began."""

    def heard(self) -> None:
        """Any event came, bookmarks included: the watch is alive."""

    def apply(self, event: WatchEvent) -> None:
        """ADDED, MODIFIED or DELETED."""

    def stale(self, why: ApiError, verb: str = "list") -> None:
        """What was delivered may be missing changes until the next list or watch
        works; ``verb`` says which of the two failed."""

    def live(self) -> None:
        """A watch is open again after a failure: changes are delivered again."""


class Reflector:
    def __init__(self, what: str, lister: Callable[[], Listing],
                 watcher: Callable[[str], Iterable[bytes]], feed: Feed, backoff: Backoff, *,
                 sleep: Callable[[float], object], rng: random.Random | None = None,
                 start_jitter: float = 0.0, max_event: int = 4 * 1024 * 1024) -> None:
        self.what = what
        self._list = lister
        self._watch = watcher
        self._feed = feed
        self._backoff = backoff
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._start_jitter = start_jitter
        self._max_event = max_event
        self.rv: str | None = None     # where the next watch starts; None: list first
        self.failures = 0              # consecutive failed attempts
        self.lists = 0
        self.watches = 0
        self.idle_reconnects = 0

    def run(self, stop: threading.Event | None = None) -> None:
        if self._start_jitter > 0:
            self._sleep(self._rng.uniform(0, self._start_jitter))
        while stop is None or not stop.is_set():
            verb = "list" if self.rv is None else "watch"
            try:
                self.step()
            except ApiError as e:
                self._failed(e, verb)
            except Exception as e:  # nothing may end the loop
                internal.report(f"the {self.what} loop", e)
                self._failed(ApiError(f"internal error: {type(e).__name__}"), verb)

    def step(self) -> None:
        """One list, or one watch until it ends. Raises ApiError on failure."""
        if self.rv is None:
            listing = self._list()
            self._feed.replace(listing)
            self.lists += 1
            self.rv = listing.resource_version
            self._ok()
            return
        self.watches += 1
        decoder = WatchDecoder(self._max_event)
        opened = events = False
        try:
            for data in self._watch(self.rv):
                if not opened:
                    opened = True
                    self._feed.opened()
                    self._ok()
                for ev in decoder.feed(data):
                    events = True
                    self._feed.heard()
                    if ev.type != "BOOKMARK":
                        self._feed.apply(ev)
                    if ev.resource_version:
                        self.rv = ev.resource_version
        except ApiGone:
            log.info("%s: watch history expired (410 Gone); listing again", self.what,
                     extra={"event": "watch_relist"})
            self.rv = None
            return
        except ApiTooNew:
            log.warning("%s: the API server is behind the version kubemeta holds (504 Too "
                        "large resource version); listing again", self.what,
                        extra={"event": "watch_relist"})
            self.rv = None
            return
        except ApiUnreachable as e:
            if not opened or e.reason != "timed out":
                raise
            # Open, then silent past the inactivity timeout: the connection may be
            # dead without either end knowing. Not an outage: just watch again.
            log.debug("%s: watch silent too long; reconnecting", self.what)
            self.idle_reconnects += 1
            return
        if not events:
            # An answer that ends at once with nothing in it: do not spin on it.
            self._sleep(self._backoff.initial)

    def _ok(self) -> None:
        if self.failures:
            self.failures = 0
            self._feed.live()

    def _failed(self, e: ApiError, verb: str) -> None:
        self.failures += 1
        self._feed.stale(e, verb)
        self._sleep(self._backoff.delay(self.failures))
