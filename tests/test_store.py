from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kubemeta import internal
from kubemeta.cache.policy import Backoff, BreakerState
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ApiError, ApiUnauthorized, ConfigError, ShapeError
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.shell import stats

from fakes import FakeClock, FakeFetcher, make_store, probe_until_closed, store_settings

REF = PodRef("shop", "web-1", "app", "cid", None)
POD = PodMeta("uid-1", {"app": "web"}, None, "node-1")
POD2 = PodMeta("uid-1", {"app": "web", "v": "2"}, None, "node-1")
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, "2026-01-01T00:00:00Z")
SETTINGS: dict[str, Any] = dict(
    pod_ttl=60, namespace_ttl=600, not_found_ttl=30, error_retry_interval=5,
    pod_cache_size=100, namespace_cache_size=100, workers=2, breaker_threshold=2,
    probe=Backoff(1.0, 30.0, 0.0), max_request_rate=1000, request_burst=1000)


def make(src: FakeFetcher | Callable[[], Any], clock: FakeClock, **kw: Any) -> MetadataStore:
    return make_store(src, clock, **{**SETTINGS, **kw})


def settle(store: MetadataStore) -> None:
    assert store.wait_idle(10)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_first_lookup_waits_for_the_answer(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    store = make(src, clock)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD
    assert ne is not None and ne.value == NS


def test_one_request_per_object_however_many_lines(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    for _ in range(50):
        store.lookup(REF, clock())  # deadline already passed: never waits
    store.lookup(REF._replace(container="sidecar"), clock())
    src.gate.set()
    settle(store)
    assert sorted(src.calls) == [("ns", "shop"), ("pod", ("shop", "web-1"))]


def test_a_request_in_flight_is_shared_by_every_line_that_asks(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    store.lookup(REF, clock())
    until(lambda: len(src.calls) == 2)  # both out, held by the API: no longer queued
    for _ in range(50):
        store.lookup(REF, clock())
    src.gate.set()
    settle(store)
    assert sorted(src.calls) == [("ns", "shop"), ("pod", ("shop", "web-1"))]


def test_deadline_bounds_the_wait_when_the_api_hangs(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    assert store.lookup(REF, clock() + 0.05) == (None, None)
    src.gate.set()
    settle(store)


def test_after_one_wait_runs_out_no_line_waits_until_an_answer(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD, ("shop", "web-2"): POD}, {"shop": NS})
    src.gate = threading.Event()
    store = make(src, clock)
    assert store.lookup(REF, clock() + 0.05) == (None, None)
    done = threading.Event()

    def other() -> None:
        store.lookup(REF._replace(pod="web-2"), clock() + 3600)  # would block an hour
        done.set()

    threading.Thread(target=other, daemon=True).start()
    assert done.wait(10)
    src.gate.set()
    settle(store)
    src.pods[("shop", "web-3")] = POD
    pe, _ = store.lookup(REF._replace(pod="web-3"), clock() + 10)
    assert pe is not None and pe.value == POD  # answers came: waiting is allowed again


def test_expired_entries_are_served_while_refreshing(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
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
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    store = make(src, clock)
    good, _ = store.lookup(REF, clock() + 10)
    src.fail_times = 1000
    clock.advance(61)
    store.lookup(REF, clock() + 10)
    until(lambda: store.breaker_state() is BreakerState.OPEN)
    kept, _ = store.lookup(REF, clock() + 10)
    assert kept is good and kept is not None and kept.value == POD
    assert store.counters.podmetadataerror >= 1


def test_outage_opens_the_breaker_and_stops_per_object_requests(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", f"p{i}"): POD for i in range(50)}, {"shop": NS}, fail_times=10**6,
                     error=ApiError("403 Forbidden", 403))
    store = make(src, clock)
    for i in range(50):
        store.lookup(REF._replace(pod=f"p{i}"), clock())
    until(lambda: store.breaker_state() is BreakerState.OPEN)
    time.sleep(0.2)
    n = len(src.calls)
    assert n <= 2 + SETTINGS["workers"]  # the threshold, plus what was already in flight
    for i in range(50):  # lines keep coming: nothing more goes out
        assert store.lookup(REF._replace(pod=f"p{i}"), clock() + 10) == (None, None)
    time.sleep(0.2)
    assert len(src.calls) == n
    # The probe is due after the backoff; it fails (403 still) and backs off further.
    clock.advance(1.0)
    store.poke()
    until(lambda: len(src.calls) == n + 1)
    time.sleep(0.2)
    assert len(src.calls) == n + 1


def test_recovery_fills_new_pods_without_a_restart(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=10**6,
                     error=ApiError("connection refused", 0))
    store = make(src, clock)
    assert store.lookup(REF, clock() + 10) == (None, None)
    until(lambda: store.breaker_state() is BreakerState.OPEN)
    src.fail_times = 0  # the API is back
    probe_until_closed(store, clock)
    settle(store)
    pe, ne = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD and ne is not None and store.api_ok


def test_retry_after_holds_the_next_probe(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=10**6,
                     error=ApiError("429 Too Many Requests", 429, retry_after=120))
    store = make(src, clock)
    store.lookup(REF, clock())
    until(lambda: store.breaker_state() is BreakerState.OPEN)
    time.sleep(0.1)
    n = len(src.calls)
    clock.advance(60)
    store.poke()
    time.sleep(0.2)
    assert len(src.calls) == n
    clock.advance(61)
    store.poke()
    until(lambda: len(src.calls) > n)
    assert store.counters.podmetadatabusy + store.counters.namespacemetadatabusy >= 1


def test_not_found_is_cached_briefly(clock: FakeClock) -> None:
    src = FakeFetcher({}, {"shop": NS})
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


def test_unauthorized_rereads_credentials_and_retries_at_once(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=1,
                     error=ApiUnauthorized("401 Unauthorized", 401))
    store = make(src, clock)
    pe, _ = store.lookup(REF, clock() + 10)
    assert src.unauthorized == 1
    assert pe is not None and pe.value == POD and store.api_ok


def test_an_object_the_api_describes_wrongly_does_not_open_the_breaker(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=2,
                     error=ShapeError("expected kind Pod, got 'ConfigMap'"))
    store = make(src, clock)
    store.lookup(REF, clock() + 10)
    settle(store)
    assert store.breaker_state() is BreakerState.CLOSED
    assert store.lookup(REF._replace(pod="web-2"), clock() + 10)[0] is not None


def test_cache_size_is_bounded(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", f"p{i}"): POD for i in range(30)}, {"shop": NS})
    store = make(src, clock, pod_cache_size=10)
    for i in range(30):
        store.lookup(REF._replace(pod=f"p{i}"), clock() + 10)
    settle(store)
    assert store.sizes()[0] <= 10


def test_a_broken_source_means_file_name_fields_only(clock: FakeClock) -> None:
    def broken() -> Any:
        raise ConfigError("kubeconfig /nope: not found")

    store = make(broken, clock)
    assert store.wait_ready(10)  # the fetcher could not be built
    assert store.lookup(REF, clock() + 10) == (None, None)
    settle(store)


# -- deleted pods --
OLD = PodMeta("uid-old", {"app": "web", "gen": "1"}, None, "node-1", ("cid-old",))
NEW = PodMeta("uid-new", {"app": "web", "gen": "2"}, None, "node-1", ("cid-new",))


def line(cid: str | None = None, uid: str | None = None) -> PodRef:
    return PodRef("shop", "web-1", "app", cid, uid)


def labels(store: MetadataStore, ref: PodRef, clock: FakeClock) -> Any:
    pe, _ = store.lookup(ref, clock() + 1, clock())
    return pe.value.labels if pe is not None and pe.value is not None else None


def test_deleted_pod_serves_its_lines_until_they_go_quiet(clock: FakeClock) -> None:
    src = FakeFetcher({}, {"shop": NS})
    store = make(src, clock, deleted_quiet=300, deleted_max_age=3600)
    store.put_watched("pod", ("shop", "web-1"), OLD)
    store.forget_watched("pod", ("shop", "web-1"))  # DELETED
    for _ in range(10):  # lines keep coming, for longer than the pod TTL
        clock.advance(100)
        store.poke()
        assert labels(store, line("cid-old"), clock) == {"app": "web", "gen": "1"}
    assert store.counters.linesdeletedpod == 10
    assert [c for c in src.calls if c[0] == "pod"] == []  # no GET for a known deletion
    clock.advance(301)  # then quiet
    until(lambda: (store.poke(), store.deleted())[1] == 0)
    assert labels(store, line("cid-old"), clock) is None


def test_deleted_pod_has_a_hard_cap(clock: FakeClock) -> None:
    store = make(FakeFetcher({}, {"shop": NS}), clock, deleted_quiet=300, deleted_max_age=500)
    store.put_watched("pod", ("shop", "web-1"), OLD)
    store.forget_watched("pod", ("shop", "web-1"))
    for _ in range(6):
        clock.advance(100)
        labels(store, line("cid-old"), clock)
    until(lambda: (store.poke(), store.deleted())[1] == 0)


def test_recreated_pod_of_the_same_name_never_mixes_with_the_old(clock: FakeClock) -> None:
    store = make(FakeFetcher({}, {"shop": NS}), clock)
    store.put_watched("pod", ("shop", "web-1"), OLD)
    store.forget_watched("pod", ("shop", "web-1"))
    store.put_watched("pod", ("shop", "web-1"), NEW)  # a StatefulSet's web-1 again
    assert labels(store, line("cid-old"), clock) == {"app": "web", "gen": "1"}
    assert labels(store, line(uid="uid-old"), clock) == {"app": "web", "gen": "1"}
    assert labels(store, line("cid-new"), clock) == {"app": "web", "gen": "2"}
    assert labels(store, line("cid-restarted"), clock) == {"app": "web", "gen": "2"}


def test_a_404_for_a_pod_we_knew_is_a_deletion(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-1"): OLD}, {"shop": NS})
    store = make(src, clock)
    assert labels(store, line("cid-old"), clock) == {"app": "web", "gen": "1"}
    del src.pods[("shop", "web-1")]
    clock.advance(61)  # past the pod TTL: refreshed, and 404
    labels(store, line("cid-old"), clock)
    settle(store)
    assert store.deleted() == 1
    assert labels(store, line("cid-old"), clock) == {"app": "web", "gen": "1"}


def test_a_relist_that_still_has_the_pod_undoes_the_deletion(clock: FakeClock) -> None:
    store = make(FakeFetcher({}, {"shop": NS}), clock)
    store.replace_watched("pod", {("shop", "web-1"): OLD})
    store.replace_watched("pod", {})
    assert store.deleted() == 1
    store.replace_watched("pod", {("shop", "web-1"): OLD})
    assert store.deleted() == 0


def test_stop_ends_the_store_s_threads(clock: FakeClock) -> None:
    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if t.name.startswith(("kubemeta-lookup", "kubemeta-dispatch")) and t.is_alive()]

    before = len(ours())
    store = make(FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}), clock)
    store.lookup(REF, clock() + 5)
    until(lambda: len(ours()) == before + 3)  # the dispatcher and two workers
    store.stop()
    until(lambda: len(ours()) == before)


def test_a_lazy_store_builds_its_source_only_when_a_lookup_needs_it(clock: FakeClock) -> None:
    built: list[FakeFetcher] = []

    def factory() -> FakeFetcher:
        built.append(FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}))
        return built[-1]

    store = MetadataStore(clock=clock, settings=store_settings(**SETTINGS))
    store.preload([(("shop", "web-1"), POD)], [("shop", NS)], [], lambda: 1.0)
    store.start(factory, lazy=True)  # a warm start: the snapshot serves meanwhile
    for _ in range(20):
        pe, _ne = store.lookup(REF, clock() + 1, clock())
        assert pe is not None and pe.value == POD
    time.sleep(0.2)
    assert built == []  # nothing needed the client: it was never imported
    pe, _ = store.lookup(REF._replace(pod="web-2"), clock() + 5, clock())
    assert len(built) == 1 and built[0].calls == [("pod", ("shop", "web-2"))]
    store.stop()


def test_a_bug_in_the_client_is_an_internal_error_not_an_outage(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    # What kubernetes 37's changed call_api did to every request.
    bug = TypeError("ApiClient.call_api() got an unexpected keyword argument 'path_params'")
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=10**6, error=bug)
    before = internal.ERRORS.count
    with caplog.at_level(logging.DEBUG, logger="kubemeta"):
        store = make(src, clock)
        assert store.lookup(REF, clock() + 10) == (None, None)  # answered all the same
        until(lambda: store.breaker_state() is BreakerState.OPEN)  # lines stop waiting
        for _ in range(3):
            clock.advance(60.0)
            store.poke()
            assert store.lookup(REF, clock() + 10) == (None, None)
        until(lambda: len(src.calls) >= 3)  # the probes went out, and failed the same way
        until(lambda: any(r.levelno == logging.CRITICAL for r in caplog.records))
        store.stop()
    assert internal.ERRORS.count - before >= 3
    assert stats.snapshot(store, clock())["internalerrors"] == internal.ERRORS.count
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1, [r.getMessage() for r in critical]  # once, not per request
    text = critical[0].getMessage()
    assert "internal error in a lookup: TypeError" in text and "path_params" in text
    assert "kubernetes " in text and "urllib3 " in text and "Python " in text  # versions
    assert critical[0].exc_info is not None  # the traceback
    assert not any("unavailable" in r.getMessage() for r in caplog.records)
