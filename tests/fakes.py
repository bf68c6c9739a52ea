"""Fakes that stand in for the API at the Source boundary, and a fake clock."""

from __future__ import annotations

import threading

from kubemeta.errors import ApiError, ApiNotFound
from kubemeta.schema import NamespaceMeta, PodMeta


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSource:
    """Answers from dicts; fails the next ``fail_times`` requests with ``error``."""

    def __init__(self, pods: dict[tuple[str, str], PodMeta] | None = None,
                 namespaces: dict[str, NamespaceMeta] | None = None,
                 fail_times: int = 0, error: Exception | None = None) -> None:
        self.pods = pods or {}
        self.namespaces = namespaces or {}
        self.fail_times = fail_times
        self.error: Exception = error or ApiError("503 Service Unavailable", 503)
        self.calls: list[tuple[str, object]] = []
        self.unauthorized = 0
        self.gate: threading.Event | None = None  # when set, requests block until it is
        self._lock = threading.Lock()

    def _call(self, what: str, key: object) -> None:
        with self._lock:
            self.calls.append((what, key))
            fail = self.fail_times > 0
            if fail:
                self.fail_times -= 1
        if self.gate is not None:
            self.gate.wait(30)
        if fail:
            raise self.error

    def pod(self, namespace: str, name: str) -> PodMeta:
        self._call("pod", (namespace, name))
        try:
            return self.pods[(namespace, name)]
        except KeyError:
            raise ApiNotFound("404 Not Found", 404) from None

    def namespace(self, name: str) -> NamespaceMeta:
        self._call("ns", name)
        try:
            return self.namespaces[name]
        except KeyError:
            raise ApiNotFound("404 Not Found", 404) from None

    def on_unauthorized(self) -> None:
        self.unauthorized += 1

