"""Retry policy as small immutable values: backoff, circuit breaker, request rate.

Pure arithmetic over a ``now`` the caller passes in: no clock, no sleeping, so
every rule is tested in fake time. The store applies them; these only decide.

The breaker: while the API answers, requests flow (closed). After
``threshold`` consecutive failures it opens: per-object requests stop, and
only one probe at a time goes out, paced by a ProbePace (a short jittered
interval early in an outage, then a capped exponential backoff with jitter,
tenacity's ``wait_exponential_jitter``), never sooner than the API's
Retry-After. A probe that succeeds closes it.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tenacity.wait import wait_exponential_jitter


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# tenacity 9.1 renamed the scale of wait_exponential_jitter ("initial", deprecated
# since) to "multiplier"; bookworm's 8.2 knows only "initial".
_SCALE = ("multiplier" if "multiplier" in inspect.signature(wait_exponential_jitter).parameters
          else "initial")


class _Attempt:
    """The one thing tenacity's wait strategies read from a RetryCallState."""

    __slots__ = ("attempt_number",)

    def __init__(self, n: int) -> None:
        self.attempt_number = n


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: initial * 2**(n-1) + U(0, jitter), <= maximum."""

    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0

    def delay(self, attempt: int) -> float:
        wait = wait_exponential_jitter(**{_SCALE: self.initial}, max=self.maximum,
                                       jitter=self.jitter)
        return float(wait(_Attempt(max(1, attempt))))  # type: ignore[arg-type]

    def after(self, attempt: int, outage: float) -> float:
        """As a breaker's pace: the outage's age does not matter."""
        return self.delay(attempt)


class ProbeDelay(Protocol):
    def after(self, attempt: int, outage: float) -> float:
        """Seconds before the next probe, after ``attempt`` failed ones in an
        outage ``outage`` seconds old."""


@dataclass(frozen=True)
class ProbePace:
    """How an open breaker probes: every ``interval`` seconds (between half and
    one and a half of it, at random, so a fleet does not probe in step) for the
    first ``window`` seconds of an outage, so the API is found back about a
    second after it returns; then by ``backoff``, so a long outage costs the API
    little. ``interval`` 0: by ``backoff`` from the start."""

    interval: float = 1.0
    window: float = 300.0
    backoff: Backoff = Backoff()

    def after(self, attempt: int, outage: float) -> float:
        if self.interval > 0 and outage < self.window:
            return self.interval * random.uniform(0.5, 1.5)
        return self.backoff.delay(attempt)


@dataclass(frozen=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0          # consecutive failures
    attempt: int = 0           # failed probes since it opened
    opened_at: float = 0.0
    probe_at: float = 0.0
    reason: str = ""           # what the API last did wrong, for the journal
    status: int = 0

    def allows_requests(self) -> bool:
        return self.state is BreakerState.CLOSED

    def probe_due(self, now: float) -> bool:
        return self.state is BreakerState.OPEN and now >= self.probe_at

    def start_probe(self) -> Breaker:
        return dataclasses.replace(self, state=BreakerState.HALF_OPEN)

    def on_success(self) -> Breaker:
        return Breaker()

    def on_failure(self, now: float, reason: str, status: int, retry_after: float | None,
                   threshold: int, pace: ProbeDelay) -> Breaker:
        failures = self.failures + 1
        if self.state is BreakerState.CLOSED and failures < threshold:
            return dataclasses.replace(self, failures=failures, reason=reason, status=status)
        if self.state is BreakerState.OPEN:
            # A request already out when the breaker opened: not a failed probe,
            # so the backoff does not grow (a Retry-After still counts).
            return dataclasses.replace(
                self, failures=failures, reason=reason, status=status,
                probe_at=max(self.probe_at, now + (retry_after or 0.0)))
        attempt = self.attempt + 1 if self.state is not BreakerState.CLOSED else 1
        opened_at = self.opened_at if self.state is not BreakerState.CLOSED else now
        wait = max(pace.after(attempt, now - opened_at), retry_after or 0.0)
        return Breaker(BreakerState.OPEN, failures, attempt, opened_at, now + wait, reason,
                       status)

    def probe_by(self, now: float) -> Breaker:
        """The API was seen answering another way: an open breaker probes by ``now``."""
        if self.state is BreakerState.OPEN and self.probe_at > now:
            return dataclasses.replace(self, probe_at=now)
        return self

    def on_probe_aborted(self) -> Breaker:
        """The probe ended without telling us anything (e.g. 404 for a gone object
        while half-open counts as an answer, so this is for internal errors only)."""
        if self.state is BreakerState.HALF_OPEN:
            return dataclasses.replace(self, state=BreakerState.OPEN)
        return self


@dataclass(frozen=True)
class TokenBucket:
    """At most ``rate`` requests per second on average, ``burst`` at once."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> tuple[bool, TokenBucket, float]:
        """(allowed, new bucket, seconds until a token is available if not)."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        if tokens >= 1.0:
            return True, dataclasses.replace(self, tokens=tokens - 1.0, stamp=now), 0.0
        return False, dataclasses.replace(self, tokens=tokens, stamp=now), \
            (1.0 - tokens) / self.rate

