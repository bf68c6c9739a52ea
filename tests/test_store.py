from __future__ import annotations

import threading
from typing import Any

import pytest

from kubemeta.errors import ApiError, ApiUnauthorized
from kubemeta.identify import PodRef
from kubemeta.schema import NamespaceMeta, PodMeta
from kubemeta.store import MetadataStore

from fakes import FakeClock, FakeSource

REF = PodRef("shop", "web-1", "app", "cid", None)
POD = PodMeta("uid-1", {"app": "web"}, None, "node-1")
POD2 = PodMeta("uid-1", {"app": "web", "v": "2"}, None, "node-1")
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, "2026-01-01T00:00:00Z")


def make(src: FakeSource, clock: FakeClock, **kw: Any) -> MetadataStore:
    args: dict[str, Any] = dict(pod_ttl=60, namespace_ttl=600, not_found_ttl=30,
                                error_retry_interval=5, pod_cache_size=100,
                                namespace_cache_size=100, workers=2)
    args.update(kw)
    store = MetadataStore(lambda: src, clock=clock, **args)  # type: ignore[arg-type,return-value]
    store.start()
    return store


def settle(store: MetadataStore) -> None:
    assert store.wait_idle(10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_first_lookup_waits_for_the_answer(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS})
    store = make(src, clock)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD
    assert ne is not None and ne.value == NS


def test_one_request_per_object_however_many_lines(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    for _ in range(50):
        store.lookup(REF, clock())  # deadline already passed: never waits
    other_container = REF._replace(container="sidecar")
    store.lookup(other_container, clock())
    src.gate.set()
    settle(store)
    assert sorted(src.calls) == [("ns", "shop"), ("pod", ("shop", "web-1"))]


def test_deadline_bounds_the_wait_when_the_api_hangs(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    # clock is fake and frozen: the wait is bounded by the remaining deadline (0.05 s real).
    pe, ne = store.lookup(REF, clock() + 0.05)
    assert pe is None and ne is None
    src.gate.set()
    settle(store)


def test_expired_entries_are_served_while_refreshing(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS})
    store = make(src, clock)
    first, _ = store.lookup(REF, clock() + 10)
    src.pods[("shop", "web-1")] = POD2
    src.gate = threading.Event()
    clock.advance(61)
    stale, _ = store.lookup(REF, clock() + 10)
    assert stale is first  # no waiting for a refresh when we have an answer
    src.gate.set()
    settle(store)
    fresh, _ = store.lookup(REF, clock() + 10)
    assert fresh is not None and fresh.value == POD2


def test_failed_refresh_keeps_last_good_metadata(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS})
    store = make(src, clock)
    good, _ = store.lookup(REF, clock() + 10)
    src.fail_times = 100
    clock.advance(61)
    store.lookup(REF, clock() + 10)
    settle(store)
    assert not store.api_ok
    kept, _ = store.lookup(REF, clock() + 10)
    assert kept is good and kept is not None and kept.value == POD
    assert store.counters.podmetadataerror >= 1


def test_transient_errors_are_not_cached_as_answers(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS}, fail_times=2)
    store = make(src, clock)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is None and ne is None
    assert not store.api_ok
    # While failing: no waiting, and no new request until the retry interval passed.
    calls = len(src.calls)
    assert store.lookup(REF, clock() + 10) == (None, None)
    assert len(src.calls) == calls
    clock.advance(5)
    store.lookup(REF, clock() + 10)
    settle(store)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD and store.api_ok


def test_retry_after_is_honoured(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS}, fail_times=2,
                     error=ApiError("429 Too Many Requests", 429, retry_after=30))
    store = make(src, clock)
    store.lookup(REF, clock() + 10)
    settle(store)
    clock.advance(10)
    n = len(src.calls)
    store.lookup(REF, clock() + 10)
    assert len(src.calls) == n
    assert store.counters.podmetadatabusy == 1
    clock.advance(21)
    store.lookup(REF, clock() + 10)
    settle(store)
    assert len(src.calls) > n


def test_not_found_is_cached_briefly(clock: FakeClock) -> None:
    src = FakeSource({}, {"shop": NS})
    store = make(src, clock)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value is None and ne is not None
    n = len(src.calls)
    clock.advance(29)
    store.lookup(REF, clock() + 10)
    assert len(src.calls) == n
    src.pods[("shop", "web-1")] = POD
    clock.advance(2)
    store.lookup(REF, clock() + 10)
    settle(store)
    pe, _ = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD


def test_unauthorized_asks_the_source_to_reread_credentials(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD}, {"shop": NS}, fail_times=1,
                     error=ApiUnauthorized("401 Unauthorized", 401))
    store = make(src, clock)
    store.lookup(REF, clock() + 10)
    settle(store)
    assert src.unauthorized == 1


def test_cache_size_is_bounded(clock: FakeClock) -> None:
    src = FakeSource({("shop", f"p{i}"): POD for i in range(30)}, {"shop": NS})
    store = make(src, clock, pod_cache_size=10)
    for i in range(30):
        store.lookup(REF._replace(pod=f"p{i}"), clock() + 10)
    settle(store)
    assert store.sizes()[0] <= 10


def test_a_broken_source_means_file_name_fields_only(clock: FakeClock) -> None:
    from kubemeta.errors import ConfigError

    def broken() -> Any:
        raise ConfigError("kubeconfig /nope: not found")

    store = MetadataStore(broken, clock=clock, pod_ttl=60, namespace_ttl=60, not_found_ttl=30,
                          error_retry_interval=5, pod_cache_size=10, namespace_cache_size=10,
                          workers=1)
    store.start()
    settle(store)
    assert store.lookup(REF, clock() + 10) == (None, None)
    settle(store)


def test_after_one_wait_runs_out_no_line_waits_until_an_answer(clock: FakeClock) -> None:
    src = FakeSource({("shop", "web-1"): POD, ("shop", "web-2"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    assert store.lookup(REF, clock() + 0.05) == (None, None)  # pays the deadline once
    waited = threading.Event()

    def other() -> None:
        # Would block for its whole (long) deadline if the store still waited.
        store.lookup(REF._replace(pod="web-2"), clock() + 3600)
        waited.set()

    t = threading.Thread(target=other, daemon=True)
    t.start()
    assert waited.wait(10)
    src.gate.set()
    settle(store)
    pe, _ = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD
    # Answers came: waiting for a new pod is allowed again.
    src.pods[("shop", "web-3")] = POD
    pe, _ = store.lookup(REF._replace(pod="web-3"), clock() + 10)
    assert pe is not None and pe.value == POD
