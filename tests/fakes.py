"""Fakes that stand in for the API at the store's Fetcher boundary, and a fake clock."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from kubemeta import app
from kubemeta.cache.lookups import LookupSettings
from kubemeta.cache.rules import CacheSettings
from kubemeta.cache.store import MetadataStore, StoreSettings
from kubemeta.config import Config
from kubemeta.errors import ApiError, ApiNotFound
from kubemeta.model.schema import NamespaceMeta, PodMeta


class FakeClock:
    """kubemeta.clock.Clock in fake time: it moves only when told (advance), or by
    what a part sleeps, which returns at once."""

    EPOCH = 1_790_000_000.0  # wall() at now == 0

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.EPOCH + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def store_settings(**overrides: Any) -> StoreSettings:
    """The defaults' store settings (as app.py builds them from Config()), with
    ``overrides`` by field name of CacheSettings or LookupSettings."""
    base = app.store_settings(Config())
    cache = {k: v for k, v in overrides.items() if k in CacheSettings.__dataclass_fields__}
    lookups = {k: v for k, v in overrides.items() if k in LookupSettings.__dataclass_fields__}
    unknown = overrides.keys() - cache.keys() - lookups.keys()
    assert not unknown, f"not a store setting: {sorted(unknown)}"
    return StoreSettings(dataclasses.replace(base.cache, **cache),
                         dataclasses.replace(base.lookups, **lookups))


def make_store(fetcher: Any, clock: Any, **overrides: Any) -> MetadataStore:
    """A started store asking ``fetcher`` (a Fetcher, or a function making one)."""
    store = MetadataStore(clock=clock, settings=store_settings(**overrides))
    store.start(fetcher if callable(fetcher) and not isinstance(fetcher, FakeFetcher)
                else lambda: fetcher)
    return store


class FakeFetcher:
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


class FakeRsyslogOmprog:
    """rsyslog's omprog action with confirmMessages="on", driving a helper the way
    action.c (8.2302 and 8.2504) drives an old-style transactional output module:
    actionPrepare begins a transaction on a ready action, doTransaction sends the
    batch's records and, when one is not confirmed, restarts the helper and sends
    that record again (not the ones before it), and actionCommit retries a batch
    whose commit failed record by record. ``new_child`` makes a helper: a callable
    from a frame to its status line. The helper dies while handling frame number
    ``kill_at`` (counting every frame sent), before it acts on it or, with
    ``kill_after``, after it acted but before its status is read."""

    def __init__(self, new_child: Callable[[], Callable[[bytes], bytes]],
                 use_transactions: bool, kill_at: int | None = None,
                 kill_after: bool = False) -> None:
        self._new_child = new_child
        self._tx = use_transactions
        self._child: Callable[[bytes], bytes] | None = new_child()
        self._state = "RDY"
        self.kill_at = kill_at
        self.kill_after = kill_after
        self.sent = 0
        self.restarts = 0

    def _send(self, frame: bytes) -> str:
        """The status, or SUSPENDED when the helper is dead or says anything else."""
        if self._child is None:
            return "SUSPENDED"  # EPIPE: the child is gone
        n, self.sent = self.sent, self.sent + 1
        if n == self.kill_at and not self.kill_after:
            self._child = None
            return "SUSPENDED"
        status = self._child(frame).rstrip(b"\n").decode()
        if n == self.kill_at:
            self._child = None
            return "SUSPENDED"  # read() returned 0: terminated
        return status if status in ("OK", "DEFER_COMMIT", "PREVIOUS_COMMITTED") else "SUSPENDED"

    def _prepare(self) -> None:
        if self._state == "RTRY":  # tryResume: omprog starts a new child
            self._child = self._new_child()
            self.restarts += 1
            self._state = "RDY"
        if self._state == "RDY":
            if self._tx and self._send(b"BEGIN TRANSACTION") != "OK":
                self._state = "RTRY"
                return
            self._state = "ITX"

    def _do_transaction(self, batch: list[bytes]) -> None:
        i = 0
        while i < len(batch):
            self._prepare()
            if self._state != "ITX":
                continue  # still suspended: the same record again
            status = self._send(batch[i])
            if status == "SUSPENDED":
                self._state = "RTRY"
                continue  # "--i; we need to re-submit": this record, not those before
            if status == "OK":
                self._state = "RDY"  # actionCommitted
            i += 1

    def _try_commit(self, batch: list[bytes]) -> bool:
        self._prepare()
        self._do_transaction(batch)
        if self._state == "ITX":
            if self._tx and self._send(b"COMMIT TRANSACTION") != "OK":
                self._state = "RTRY"
                return False
            self._state = "RDY"
        return self._state == "RDY"

    def commit(self, batch: list[bytes]) -> None:
        """actionCommit: one batch of the action queue, until it is committed."""
        if self._try_commit(batch):
            return
        remaining = batch
        if len(batch) > 1:  # actionTryRemoveHardErrorsFromBatch
            remaining = [r for r in batch if not self._try_commit([r])]
        while remaining and not self._try_commit(remaining):
            pass


def store_with_traffic() -> tuple[MetadataStore, FakeClock]:
    """A store that has looked up one pod it found and one it did not."""
    from kubemeta.model.identify import PodRef

    clock = FakeClock()
    pod = PodMeta("uid-1", {"app": "web"}, None, "node-1")
    ns = NamespaceMeta("ns-uid", None, None, None)
    store = make_store(FakeFetcher({("shop", "web-1"): pod}, {"shop": ns}), clock, workers=1)
    store.lookup(PodRef("shop", "web-1", "app", None, None), clock() + 10)
    store.lookup(PodRef("shop", "gone", "app", None, None), clock() + 10)
    assert store.wait_idle(10)
    return store, clock


def probe_until_closed(store: MetadataStore, clock: FakeClock, timeout: float = 10.0) -> None:
    """Let the breaker's probes through, fake time moving a backoff at a time,
    until one finds the API back (the caller made it answer)."""
    import time

    from kubemeta.cache.policy import BreakerState

    end = time.monotonic() + timeout
    while store.breaker_state() is not BreakerState.CLOSED:
        assert time.monotonic() < end, "the breaker did not close"
        clock.advance(30.0)
        store.poke()
        time.sleep(0.02)  # the probe runs in the store's worker
