"""What `kubemeta status` judges, in fake time: the report and its problems."""

from __future__ import annotations

import logging

import pytest

from kubemeta.cache.counters import FeedHealth
from kubemeta.kinds import Kind
from kubemeta.kube.storefeed import StoreFeed
from kubemeta.model.schema import Shaper
from kubemeta.shell.health import Health, problems

from fakes import store_with_traffic


def test_a_healthy_report_has_no_problems() -> None:
    assert problems({"watches": {"pods": {"up": True, "seconds_since_heard": 20}},
                     "api": {"breaker": "closed"}, "config_problems": []}) == []


def test_each_degradation_is_named() -> None:
    report = {"watches": {"pods": {"up": False, "last_error": "403 Forbidden"},
                          "namespaces": {"up": True, "seconds_since_heard": 301}},
              "api": {"breaker": "open", "last_error": "connection refused"},
              "config_problems": ["k.yaml:3: de_dot: expected true or false"]}
    assert problems(report) == [
        "the watch of namespaces has heard nothing for 301 s",
        "the watch of pods is failing: 403 Forbidden",
        "the API is failing (circuit breaker open): connection refused",
        "1 problem(s) in the config file"]


def test_requests_of_the_last_minute_come_from_samples() -> None:
    store, clock = store_with_traffic()  # a 200 and a 404 so far
    store.feeds["pods"] = FeedHealth(up=True, last_heard=clock())
    health = Health(store, clock, followers=lambda: [42])
    health.sample()
    clock.advance(30)
    store.counters.apirequests["get.200"] += 3
    health.sample()
    clock.advance(40)  # the first sample is now 70 s old: out of the minute
    store.counters.apirequests["watch.503"] += 1
    report = health.report()
    assert report["api"]["requests_last_minute"] == {"watch.503": 1}
    assert report["followers"] == [42] and report["watches"]["pods"]["up"] is True
    assert report["watches"]["pods"]["seconds_since_heard"] == 70.0
    assert report["problems"] == []
    assert (report["api"]["breaker"], report["api"]["consecutive_failures"],
            report["api"]["next_probe_in_seconds"]) == ("closed", 0, None)


def test_a_node_with_no_pods_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    store, clock = store_with_traffic()
    feed = StoreFeed(store, Kind.POD, Shaper(True, "_", []), "pods on node web-host-1",
                     clock, resource="pods")
    with caplog.at_level(logging.WARNING, "kubemeta"):
        feed.replace([])
    assert "pods on node web-host-1: the API lists no pod there; is node_name this node's " \
           "name in Kubernetes" in caplog.text
    assert store.counters.apirequests["list.200"] == 1 and store.feeds["pods"].up
