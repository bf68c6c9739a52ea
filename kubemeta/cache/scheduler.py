"""Which lookup goes to the API next: pure logic, driven by ``now``.

Lookups wait here in two queues: objects we know nothing about (their lines
get only file-name fields) before refreshes of objects we can still serve
stale. While the breaker is closed they go out at a bounded rate, so a
recovering API is drained gently; while it is open only a probe goes out,
when its pace allows, and a failed probe's key goes to the back so one
odd object cannot hold the others hostage.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

from kubemeta.cache.policy import Breaker, BreakerState, ProbeDelay, TokenBucket


class Change(Enum):
    OPENED = "opened"
    RECOVERED = "recovered"


class LookupScheduler:
    def __init__(self, *, now: float, threshold: int, pace: ProbeDelay, rate: float,
                 burst: float) -> None:
        self.breaker = Breaker()
        self._threshold = threshold
        self._pace = pace
        self._bucket = TokenBucket.full(rate, burst, now)
        self._urgent: dict[Hashable, None] = {}
        self._refresh: dict[Hashable, None] = {}
        self._probe: Hashable | None = None

    def add(self, key: Hashable, urgent: bool) -> None:
        if key in self._urgent or key in self._refresh or key == self._probe:
            return
        (self._urgent if urgent else self._refresh)[key] = None

    def pending(self) -> int:
        return len(self._urgent) + len(self._refresh) + (self._probe is not None)

    def next(self, now: float) -> tuple[Hashable | None, float | None]:
        """(key to request now, None) or (None, when to ask again; None = when told)."""
        if not (self._urgent or self._refresh):
            return None, None
        state = self.breaker.state
        if state is BreakerState.HALF_OPEN:
            return None, None  # the probe's answer decides
        if state is BreakerState.OPEN:
            if not self.breaker.probe_due(now):
                return None, self.breaker.probe_at
            key = self._pop()
            self._probe = key
            self.breaker = self.breaker.start_probe()
            return key, None
        ok, self._bucket, wait = self._bucket.take(now)
        if not ok:
            return None, now + wait
        return self._pop(), None

    def _pop(self) -> Hashable:
        q = self._urgent if self._urgent else self._refresh
        key = next(iter(q))
        del q[key]
        return key

    def answered(self, key: Hashable) -> Change | None:
        """The API answered (a 404 is an answer)."""
        if key == self._probe:
            self._probe = None
        was = self.breaker.state
        self.breaker = self.breaker.on_success()
        return Change.RECOVERED if was is not BreakerState.CLOSED else None

    def failed(self, key: Hashable, now: float, reason: str, status: int,
               retry_after: float | None, urgent: bool) -> Change | None:
        """The API failed; the key stays queued (at the back) until it answers."""
        if key == self._probe:
            self._probe = None
        was = self.breaker.state
        self.breaker = self.breaker.on_failure(now, reason, status, retry_after,
                                               self._threshold, self._pace)
        (self._urgent if urgent else self._refresh)[key] = None
        if was is BreakerState.CLOSED and self.breaker.state is not BreakerState.CLOSED:
            return Change.OPENED
        return None

    def probe_now(self, now: float) -> None:
        """The API was seen answering another way: an open breaker probes now."""
        self.breaker = self.breaker.probe_by(now)

    def dropped(self, key: Hashable) -> None:
        """A lookup that ended without telling us about the API (object-level error)."""
        if key == self._probe:
            self._probe = None
            self.breaker = self.breaker.on_probe_aborted()
