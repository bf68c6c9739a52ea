"""kubelet_fallback in fake time: while the API fails, the node's kubelet stands
in for pods kubemeta does not know, and the API's answer wins once it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from apiemulator import make_pod
from kubemeta.cache.policy import Backoff, BreakerState
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ApiError
from kubemeta.kube.fallback import KubeletFallback
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta, Shaper

from fakes import FakeClock, FakeFetcher, make_store, probe_until_closed

NS = NamespaceMeta("ns-uid", {"team": "shop"}, None, "2026-01-01T00:00:00Z")
API_POD = PodMeta("uid-1", {"app": "web", "from": "api"}, None, "node-1")
# One worker: with two, a lookup handed out just before the breaker opened may
# reach the API just after, and "the API is left alone" would count it.
SETTINGS: dict[str, Any] = dict(
    pod_ttl=60, namespace_ttl=600, not_found_ttl=30, error_retry_interval=5,
    pod_cache_size=100, namespace_cache_size=100, workers=1, breaker_threshold=2,
    probe=Backoff(1.0, 30.0, 0.0), max_request_rate=1000, request_burst=1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class FakeKubelet:
    """The node's kubelet: its pods, and how often it was asked."""

    def __init__(self, *names: str) -> None:
        self.pods = [make_pod("shop", n, {"app": n, "from": "kubelet"}) for n in names]
        self.lists = 0

    def kubelet_pods(self) -> list[dict[str, Any]]:
        self.lists += 1
        return list(self.pods)


def ref(pod: str) -> PodRef:
    return PodRef("shop", pod, "app", None, None)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def with_fallback(src: FakeFetcher, kubelet: FakeKubelet, clock: FakeClock) -> MetadataStore:
    store = make_store(src, clock, **SETTINGS)
    store.fallback = KubeletFallback(lambda: kubelet, store, Shaper(True, "_", []), 2.0,
                                     "https://127.0.0.1:10250", clock)
    return store


def down(store: MetadataStore, clock: FakeClock) -> None:
    """The breaker opens: two pods looked up in vain (the namespace is known)."""
    store.lookup(ref("known-before"), clock() + 10)
    until(lambda: store.breaker_state() is BreakerState.OPEN)


def test_new_pods_are_served_from_the_kubelet_while_the_api_fails(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    src = FakeFetcher({}, {"shop": NS}, fail_times=10**6, error=ApiError("403 Forbidden", 403))
    kubelet = FakeKubelet("web-2", "web-3")
    store = with_fallback(src, kubelet, clock)
    down(store, clock)
    calls = len(src.calls)
    with caplog.at_level(logging.WARNING, "kubemeta"):
        pe, _ = store.lookup(ref("web-2"), clock() + 10)
        assert pe is not None and pe.value is not None
        assert pe.value.labels == {"app": "web-2", "from": "kubelet"}
        # One list answered both pods: the next line asks nothing more.
        pe, _ = store.lookup(ref("web-3"), clock() + 10)
        assert pe is not None and pe.value is not None and pe.value.labels["app"] == "web-3"
        assert store.lookup(ref("ghost"), clock() + 10)[0] is None  # the kubelet lacks it
    assert kubelet.lists == 1
    assert len(src.calls) == calls  # the API is left alone meanwhile
    assert (store.counters.kubeletfallbacklists, store.counters.kubeletfallbackpods) == (1, 2)
    assert caplog.text.count("pods it has not told kubemeta about are taken from the kubelet") \
        == 1
    clock.advance(2.0)  # past kubelet_min_interval: another pod, another list
    store.lookup(ref("ghost"), clock() + 10)
    assert kubelet.lists == 2


def test_the_apis_answer_wins_once_it_is_back(clock: FakeClock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    src = FakeFetcher({("shop", "web-2"): API_POD}, {"shop": NS}, fail_times=10**6,
                      error=ApiError("connection refused", 0))
    kubelet = FakeKubelet("web-2")
    store = with_fallback(src, kubelet, clock)
    down(store, clock)
    pe, _ = store.lookup(ref("web-2"), clock() + 10)
    assert pe is not None and pe.value is not None and pe.value.labels["from"] == "kubelet"
    src.fail_times = 0  # the API is back
    probe_until_closed(store, clock)
    with caplog.at_level(logging.WARNING, "kubemeta"):
        store.lookup(ref("web-2"), clock() + 10)  # due at once: asked of the API
        until(lambda: (store.lookup(ref("web-2"), clock() + 10)[0] or pe).value == API_POD)
    assert "1 pods were served from the kubelet meanwhile" in caplog.text


def test_the_kubelet_is_never_asked_while_the_api_works(clock: FakeClock) -> None:
    src = FakeFetcher({("shop", "web-2"): API_POD}, {"shop": NS})
    kubelet = FakeKubelet("web-2", "web-3")
    store = with_fallback(src, kubelet, clock)
    assert store.lookup(ref("web-2"), clock() + 10)[0].value == API_POD  # type: ignore[union-attr]
    assert store.lookup(ref("ghost"), clock() + 10)[0].value is None  # type: ignore[union-attr]
    assert kubelet.lists == 0


def test_a_kubelet_that_fails_lets_the_line_go_with_file_name_fields(clock: FakeClock) -> None:
    src = FakeFetcher({}, {"shop": NS}, fail_times=10**6, error=ApiError("403 Forbidden", 403))

    class Broken:
        def kubelet_pods(self) -> list[dict[str, Any]]:
            raise ApiError("connection refused", 0)

    store = make_store(src, clock, **SETTINGS)
    store.fallback = KubeletFallback(Broken, store, Shaper(True, "_", []), 2.0, "k", clock)
    down(store, clock)
    assert store.lookup(ref("web-2"), clock() + 10)[0] is None
