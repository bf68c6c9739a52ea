from __future__ import annotations

import dataclasses
import itertools

import pytest

from kubemeta.cache.policy import Backoff, Breaker, BreakerState, ProbePace, TokenBucket

BO = Backoff(initial=1.0, maximum=30.0, jitter=1.0)


@pytest.mark.parametrize(("attempt", "low", "high"), [
    (1, 1.0, 2.0), (2, 2.0, 3.0), (3, 4.0, 5.0), (5, 16.0, 17.0), (6, 30.0, 30.0),
    (50, 30.0, 30.0),
])
def test_backoff_is_exponential_jittered_and_capped(attempt: int, low: float, high: float
                                                    ) -> None:
    for _ in range(50):
        assert low <= BO.delay(attempt) <= high


def test_backoff_jitter_spreads_a_fleet() -> None:
    assert len({round(BO.delay(3), 6) for _ in range(20)}) > 1


def fail(b: Breaker, now: float, retry_after: float | None = None, threshold: int = 2
         ) -> Breaker:
    return b.on_failure(now, "403 Forbidden", 403, retry_after, threshold, BO)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    b = fail(Breaker(), 100.0)
    assert b.allows_requests() and b.failures == 1
    b = fail(b, 101.0)
    assert b.state is BreakerState.OPEN and not b.allows_requests()
    assert b.opened_at == 101.0 and 102.0 <= b.probe_at <= 103.0
    assert b.reason == "403 Forbidden" and b.status == 403


def test_a_success_resets_the_count() -> None:
    b = fail(Breaker(), 100.0).on_success()
    assert fail(b, 101.0).allows_requests()


def test_probes_back_off_and_success_closes() -> None:
    b = fail(fail(Breaker(), 0.0), 0.0)
    waits = []
    now = 0.0
    for _ in range(8):
        assert not b.probe_due(b.probe_at - 0.001)
        now = b.probe_at
        assert b.probe_due(now)
        b = b.start_probe()
        assert b.state is BreakerState.HALF_OPEN and not b.probe_due(now + 1000)
        before = b.probe_at
        b = fail(b, now)
        waits.append(b.probe_at - before)
        assert b.opened_at == 0.0  # the outage started at the first opening
    assert waits[-1] == pytest.approx(30.0)  # capped
    assert all(a <= b + 1.0 for a, b in itertools.pairwise(waits))
    assert b.start_probe().on_success() == Breaker()


def test_requests_already_out_when_it_opened_do_not_grow_the_backoff() -> None:
    opened = fail(fail(Breaker(), 0.0), 0.0)
    late = fail(fail(opened, 0.5), 0.6)  # the other workers' requests, failing after
    assert late.attempt == opened.attempt and late.probe_at == opened.probe_at
    assert late.failures == 4 and late.state is BreakerState.OPEN
    assert fail(opened, 0.5, retry_after=60.0).probe_at == pytest.approx(60.5)


def test_retry_after_is_a_floor_for_the_next_probe() -> None:
    b = fail(fail(Breaker(), 0.0), 10.0, retry_after=120.0)
    assert b.probe_at == pytest.approx(130.0)


def test_token_bucket_bounds_the_rate() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=5.0, now=0.0)
    allowed = 0
    for _ in range(20):
        ok, bucket, _ = bucket.take(0.0)
        allowed += ok
    assert allowed == 5
    ok, bucket, wait = bucket.take(0.0)
    assert not ok and wait == pytest.approx(0.1)
    ok, bucket, _ = bucket.take(0.1)
    assert ok
    # Over 10 simulated seconds, no more than burst + rate * 10.
    now, count = 0.1, 0
    while now < 10.1:
        ok, bucket, _ = bucket.take(now)
        count += ok
        now += 0.01
    assert count <= 5 + 100


def test_backoff_uses_the_installed_tenacity_without_deprecated_arguments() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecation today is a TypeError tomorrow
        assert 0.4 <= Backoff(0.2, 30.0, 0.0).delay(2) <= 0.4 + 1e-9


PACE = ProbePace(interval=1.0, window=300.0, backoff=Backoff(1.0, 30.0, 1.0))


def test_early_in_an_outage_probes_come_every_half_to_one_and_a_half_intervals() -> None:
    delays = [PACE.after(attempt, outage) for attempt in (1, 5, 50)
              for outage in (0.0, 60.0, 299.0) for _ in range(30)]
    assert all(0.5 <= d <= 1.5 for d in delays)
    assert len({round(d, 6) for d in delays}) > 10  # jittered: a fleet does not probe in step


def test_past_the_window_probes_follow_the_backoff() -> None:
    assert all(30.0 <= PACE.after(50, 301.0) <= 31.0 for _ in range(20))
    assert 1.0 <= PACE.after(1, 301.0) <= 2.0
    off = dataclasses.replace(PACE, interval=0.0)  # 0: by the backoff from the start
    assert all(30.0 <= off.after(50, 0.0) <= 31.0 for _ in range(20))


def test_an_open_breaker_probes_on_the_pace_of_its_outage() -> None:
    def failed(b: Breaker, now: float, retry_after: float | None = None) -> Breaker:
        return b.on_failure(now, "403 Forbidden", 403, retry_after, 2, PACE)

    b = failed(failed(Breaker(), 100.0), 100.0)
    assert 100.5 <= b.probe_at <= 101.5
    for _ in range(5):  # probe after probe, each a second or so after the last
        now = b.probe_at
        b = failed(b.start_probe(), now)
        assert now + 0.5 <= b.probe_at <= now + 1.5
    late = failed(dataclasses.replace(b, state=BreakerState.HALF_OPEN), 100.0 + 400.0)
    assert late.probe_at - 500.0 >= 30.0  # a long outage: the backoff's pace
    assert failed(b.start_probe(), 200.0, retry_after=20.0).probe_at == pytest.approx(220.0)


def test_the_api_seen_answering_another_way_makes_an_open_breaker_probe_now() -> None:
    b = fail(fail(Breaker(), 0.0), 0.0)
    assert not b.probe_due(0.5) and b.probe_by(0.5).probe_due(0.5)
    assert b.probe_by(0.5).state is BreakerState.OPEN
    assert b.probe_by(b.probe_at + 5) == b  # already due: nothing moves
    assert Breaker().probe_by(1.0) == Breaker()
    half = b.start_probe()
    assert half.probe_by(0.5) == half  # a probe is out: its answer decides
