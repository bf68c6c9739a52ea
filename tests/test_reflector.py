"""The list-then-watch loop, in fake time, against a fake API that counts."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from kubemeta.cache.policy import Backoff
from kubemeta.errors import ApiError, ApiForbidden, ApiGone, ApiUnreachable
from kubemeta.kube.reflector import Reflector
from kubemeta.wire.listproto import Listing
from kubemeta.wire.watchproto import WatchEvent


def pod(name: str, rv: int, **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "shop",
                                        "resourceVersion": str(rv), "labels": labels}}


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def listing(body: Any) -> Listing:
    """A list answer as the API sends it, in pieces as a network hands them over."""
    data = json.dumps(body).encode()
    return Listing([data[i:i + 7] for i in range(0, len(data), 7)], 1 << 20)


class FakeApi:
    """Lists and watches from scripts; the next ``fail_times`` calls fail with ``error``."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.rv = "100"
        self.streams: list[list[bytes | BaseException]] = []
        self.fail_times = 0
        self.error: ApiError = ApiForbidden("403 Forbidden", 403)
        self.calls: list[str] = []

    def _maybe_fail(self) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.error

    def list(self) -> Listing:
        self.calls.append("list")
        self._maybe_fail()
        return listing({"kind": "PodList", "metadata": {"resourceVersion": self.rv},
                        "items": self.items})

    def watch(self, rv: str) -> Iterator[bytes]:
        self.calls.append(f"watch@{rv}")
        self._maybe_fail()
        yield b""  # the answer began
        script = self.streams.pop(0) if self.streams else []
        for item in script:
            if isinstance(item, BaseException):
                raise item
            yield item


class RecordingView:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []
        self.opens = self.events_heard = 0

    def replace(self, listing: Iterable[dict[str, Any]]) -> None:
        items = list(listing)
        self.objects = {o["metadata"]["name"]: o for o in items}
        self.log.append(f"replace {len(items)}")

    def opened(self) -> None:
        self.opens += 1

    def heard(self) -> None:
        self.events_heard += 1

    def apply(self, ev: WatchEvent) -> None:
        name = ev.obj["metadata"]["name"]
        if ev.type == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = ev.obj
        self.log.append(f"{ev.type} {name}")

    def stale(self, why: ApiError, verb: str = "list") -> None:
        self.log.append(f"stale {why.reason}" if verb == "list" else
                        f"stale {why.reason} ({verb})")

    def live(self) -> None:
        self.log.append("live")


def reflector(api: FakeApi, view: RecordingView, sleeps: list[float],
              jitter: float = 0.0) -> Reflector:
    return Reflector("pods", api.list, api.watch, view, Backoff(1.0, 30.0, 0.0),
                     sleep=sleeps.append, rng=random.Random(7), start_jitter=jitter)


def test_lists_then_watches_from_the_list_and_follows_events() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    api.items = [pod("web-1", 90, app="web")]
    api.streams = [[event("MODIFIED", pod("web-1", 101, app="web", v="2")),
                    event("ADDED", pod("web-2", 102)),
                    event("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "150"}}),
                    event("DELETED", pod("web-2", 151))]]
    r = reflector(api, view, sleeps)
    r.step()
    r.step()
    assert api.calls == ["list", "watch@100"]
    assert view.objects["web-1"]["metadata"]["labels"] == {"app": "web", "v": "2"}
    assert "web-2" not in view.objects
    assert r.rv == "151"
    assert (view.opens, view.events_heard) == (1, 4)  # the bookmark too: the watch is alive
    r.step()  # the stream ended cleanly: watch again from where it stopped, no list
    assert api.calls[-1] == "watch@151"


def test_410_gone_relists_at_once_without_marking_stale() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    r = reflector(api, view, sleeps)
    r.step()
    api.streams = [[ApiGone("410 Gone: too old resource version", 410)]]
    r.step()
    assert r.rv is None
    api.rv = "300"
    r.step()
    assert api.calls == ["list", "watch@100", "list"]
    assert not any(e.startswith("stale") for e in view.log)
    assert sleeps == []


def test_failures_mark_stale_back_off_and_recover_in_fake_time() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    api.items = [pod("web-1", 90, app="web")]
    api.fail_times = 3
    stop = threading.Event()
    r = reflector(api, view, sleeps)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(api.calls) >= 6:
            stop.set()

    r._sleep = sleep
    r.run(stop)
    assert api.calls[:4] == ["list", "list", "list", "list"]
    assert sleeps[:3] == [1.0, 2.0, 4.0]  # capped exponential backoff
    assert view.log[:4] == ["stale 403 Forbidden"] * 3 + ["replace 1"]
    assert "live" in view.log  # logged back once the list worked
    assert view.objects["web-1"]["metadata"]["labels"] == {"app": "web"}


def test_a_cut_stream_resumes_from_the_last_version_seen() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    r = reflector(api, view, sleeps)
    r.step()
    api.streams = [[event("ADDED", pod("web-2", 120)),
                    ApiUnreachable("connection broken: IncompleteRead", 0)]]
    with pytest.raises(ApiUnreachable):
        r.step()
    assert r.rv == "120"
    r.step()
    assert api.calls[-1] == "watch@120"


def test_a_silent_stream_reconnects_quietly() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    r = reflector(api, view, sleeps)
    r.step()
    api.streams = [[ApiUnreachable("timed out", 0)]]
    r.step()  # not raised: not an outage
    assert r.idle_reconnects == 1
    assert not any(e.startswith("stale") for e in view.log)
    api.fail_times = 1
    api.error = ApiUnreachable("timed out", 0)  # but no answer at all is one
    with pytest.raises(ApiUnreachable):
        r.step()


def test_the_loop_survives_anything_and_jitters_its_start() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    calls = 0
    stop = threading.Event()

    def broken_list() -> Listing:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        if calls == 2:
            return listing({"metadata": {}, "items": []})  # nonsense: no resourceVersion
        stop.set()
        return api.list()

    r = Reflector("pods", broken_list, api.watch, view, Backoff(1.0, 30.0, 0.0),
                  sleep=sleeps.append, rng=random.Random(7), start_jitter=10.0)
    r.run(stop)
    assert 0 <= sleeps[0] <= 10.0  # the jittered start
    assert view.log[:2] == ["stale internal error: RuntimeError",
                            "stale list answer has no resourceVersion"]
    assert view.log[2:] == ["replace 0", "live"]


def test_a_failure_says_whether_the_list_or_the_watch_failed() -> None:
    api, view, sleeps = FakeApi(), RecordingView(), []
    api.items = [pod("web-1", 90)]
    api.streams = [[ApiError("403 Forbidden", 403)]]
    r = reflector(api, view, sleeps)
    stop = threading.Event()
    r._sleep = lambda seconds: stop.set()  # once it backs off from the first failure
    r.run(stop)
    assert view.log == ["replace 1", "stale 403 Forbidden (watch)"]
    assert view.opens == 1
