"""When the API returns, whatever waits out a backoff tries again as soon as one
part finds it back: a watch when a lookup gets an answer, the breaker's probe
when a watch is open again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubemeta.cache.policy import Backoff, BreakerState
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ApiError
from kubemeta.kinds import Kind
from kubemeta.kube.storefeed import StoreFeed
from kubemeta.kube.watches import WatchSettings, start_watches
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta, Shaper
from kubemeta.wire.listproto import Listing

from fakes import FakeClock, FakeFetcher, make_store, probe_until_closed

REF = PodRef("shop", "web-1", "app", None, None)
POD = PodMeta("uid-1", {"app": "web"}, None, "node-1")
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, None)
REFUSED = ApiError("connection refused", 0)
HOUR = Backoff(3600.0, 3600.0, 0.0)  # a backoff no test outlives


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def failing_store(clock: FakeClock, **kw: Any) -> tuple[MetadataStore, FakeFetcher]:
    """A store whose lookups found the API failing: its breaker is open."""
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}, fail_times=10**6, error=REFUSED)
    store = make_store(src, clock, workers=1, breaker_threshold=2, **kw)
    store.lookup(REF, clock() + 10)
    until(lambda: store.breaker_state() is BreakerState.OPEN)
    return store, src


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class FailingOnceApi:
    """The watches' API: each list fails once (refused), then answers; each
    watch ends at once, empty. Counts the lists."""

    def __init__(self) -> None:
        self.lists: dict[str, int] = {"pods": 0, "namespaces": 0}

    def _list(self, what: str) -> Listing:
        self.lists[what] += 1
        if self.lists[what] == 1:
            raise REFUSED
        return Listing([b'{"kind": "List", "metadata": {"resourceVersion": "7"}, "items": []}'],
                       1 << 20)

    def list_pods(self, node: str) -> Listing:
        return self._list("pods")

    def list_namespaces(self) -> Listing:
        return self._list("namespaces")

    def watch_pods(self, node: str, rv: str, timeout: float) -> Iterator[bytes]:
        return iter(())

    def watch_namespaces(self, rv: str, timeout: float) -> Iterator[bytes]:
        return iter(())


def test_watches_waiting_out_their_backoff_try_again_once_a_lookup_finds_the_api_back(
        clock: FakeClock) -> None:
    store, src = failing_store(clock)
    api = FailingOnceApi()
    start_watches(store, lambda: api, Shaper(True, "_", []),  # type: ignore[arg-type,return-value]
                  WatchSettings("node-1", 300.0, 0.0, HOUR), warm=False)
    until(lambda: store.feeds.keys() == {"pods", "namespaces"} and all(
        h.last_error for h in store.feeds.values()))  # both lists failed: an hour's backoff
    src.fail_times = 0  # the API is back, and a lookup's probe finds it
    probe_until_closed(store, clock)
    until(lambda: api.lists == {"pods": 2, "namespaces": 2})
    store.stop()


def test_an_open_breaker_probes_at_once_when_a_watch_is_open_again(clock: FakeClock) -> None:
    store, src = failing_store(clock, probe=HOUR)
    feed = StoreFeed(store, Kind.POD, Shaper(True, "_", []), "pods", resource="pods")
    feed.stale(REFUSED, "watch")
    src.fail_times = 0
    feed.live()  # the watch is open again; the clock has not moved
    until(lambda: store.breaker_state() is BreakerState.CLOSED)
    pe, _ = store.lookup(REF, clock() + 10)
    assert pe is not None and pe.value == POD
    store.stop()


def test_the_store_stopping_ends_a_backoff(clock: FakeClock) -> None:
    store, _ = failing_store(clock)
    done = threading.Event()
    threading.Thread(target=lambda: (store.retry_wait(3600.0), done.set()), daemon=True).start()
    store.stop()
    assert done.wait(10)
    assert store.retry_wait(3600.0) is True
