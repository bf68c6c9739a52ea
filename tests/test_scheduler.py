from __future__ import annotations

from kubemeta.cache.policy import Backoff, BreakerState, ProbeDelay, ProbePace
from kubemeta.cache.scheduler import Change, LookupScheduler

BO = Backoff(initial=1.0, maximum=30.0, jitter=0.0)


def make(rate: float = 10.0, burst: float = 3.0) -> LookupScheduler:
    return LookupScheduler(now=0.0, threshold=2, pace=BO, rate=rate, burst=burst)


def drain(s: LookupScheduler, now: float) -> list[object]:
    out = []
    while True:
        key, _ = s.next(now)
        if key is None:
            return out
        out.append(key)


def test_unknown_objects_go_before_refreshes_and_duplicates_collapse() -> None:
    s = make(burst=10)
    s.add("refresh-1", urgent=False)
    s.add("new-1", urgent=True)
    s.add("new-1", urgent=True)
    s.add("new-2", urgent=True)
    assert drain(s, 0.0) == ["new-1", "new-2", "refresh-1"]
    assert s.pending() == 0


def test_rate_is_bounded() -> None:
    s = make(rate=10.0, burst=3.0)
    for i in range(100):
        s.add(i, urgent=True)
    assert len(drain(s, 0.0)) == 3
    key, wake = s.next(0.0)
    assert key is None and wake is not None and abs(wake - 0.1) < 1e-9
    sent, now = 0, 0.0
    while now < 5.0:
        sent += len(drain(s, now))
        now += 0.05
    assert sent <= 51


def test_outage_then_probe_then_gentle_drain() -> None:
    s = make(rate=10.0, burst=3.0)
    for i in range(20):
        s.add(i, urgent=True)
    k1, _ = s.next(0.0)
    k2, _ = s.next(0.0)
    assert s.failed(k1, 0.0, "connection refused", 0, None, urgent=True) is None
    assert s.failed(k2, 0.0, "connection refused", 0, None, urgent=True) is Change.OPENED
    assert s.breaker.state is BreakerState.OPEN
    # Nothing goes out until the probe is due, however many lines ask.
    key, wake = s.next(0.5)
    assert key is None and wake == s.breaker.probe_at == 1.0
    probe, _ = s.next(1.0)
    assert probe is not None and s.breaker.state is BreakerState.HALF_OPEN
    assert s.next(1.0) == (None, None)  # one probe at a time
    # 403 while RBAC syncs: probes back off, honouring Retry-After.
    assert s.failed(probe, 1.0, "403 Forbidden", 403, 10.0, urgent=True) is None
    assert s.breaker.probe_at == 11.0 and s.breaker.reason == "403 Forbidden"
    probe2, _ = s.next(11.0)
    assert probe2 != probe  # the failed probe went to the back
    assert s.answered(probe2) is Change.RECOVERED
    assert s.breaker.state is BreakerState.CLOSED
    assert s.pending() == 19
    assert len(drain(s, 11.0)) <= 3


def test_an_object_level_error_during_a_probe_reopens_without_penalty() -> None:
    s = make()
    s.add("a", urgent=True)
    s.add("b", urgent=True)
    for _ in range(2):
        k, _ = s.next(0.0)
        s.failed(k, 0.0, "503", 503, None, urgent=True)
    probe, _ = s.next(5.0)
    s.dropped(probe)
    assert s.breaker.state is BreakerState.OPEN
    k, _ = s.next(5.0)
    assert k is not None


def recovery_delay(outage: float, pace: ProbeDelay, step: float = 0.01) -> float:
    """A pod first seen just as the API starts failing, for ``outage`` seconds:
    how long after the API's return its lookup gets an answer (in fake time,
    each request answered at once)."""
    s = LookupScheduler(now=0.0, threshold=2, pace=pace, rate=20.0, burst=20.0)
    s.add("ns", urgent=True)
    s.add("new-pod", urgent=True)
    now = 0.0
    while now < outage + 600:
        key, _ = s.next(now)
        while key is not None:
            if now < outage:
                s.failed(key, now, "connection refused", 0, None, urgent=True)
            else:
                s.answered(key)
                if key == "new-pod":
                    return now - outage
            key, _ = s.next(now)
        now += step
    raise AssertionError("never answered")


def test_a_pod_first_seen_in_an_outage_is_asked_for_within_one_and_a_half_seconds_of_its_end(
        ) -> None:
    pace = ProbePace(interval=1.0, window=300.0, backoff=Backoff(1.0, 30.0, 1.0))
    for outage in (3.0, 10.0, 30.0, 120.0, 290.0):
        assert max(recovery_delay(outage, pace) for _ in range(5)) <= 1.5 + 0.02
    # Past the window, the backoff's pace: a long outage costs the API little.
    assert recovery_delay(900.0, pace) <= 31.0 + 0.02
    # With exponential backoff alone, the return may go unnoticed for half a minute.
    assert max(recovery_delay(120.0, Backoff(1.0, 30.0, 1.0)) for _ in range(5)) > 2.0
