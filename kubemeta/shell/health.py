"""What ``kubemeta status`` shows of a node: gathered by the node's leader from
its store, and judged (``problems``, pure) into healthy or degraded.

The leader answers a status question over its socket with ``Health.report``.
API requests over the last minute come from samples of the request counters
that the leader takes every few seconds, so no request is timed one by one.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubemeta import __version__, internal
from kubemeta.cache.policy import BreakerState
from kubemeta.clock import SYSTEM, Clock

SAMPLE_EVERY = 5.0
WINDOW = 60.0
# A watch that has heard nothing (not even a bookmark, which a healthy API
# server sends about every minute) for this long is taken for a silent API.
SILENT_AFTER = 300.0


class Health:
    def __init__(self, store: Any, clock: Clock = SYSTEM, *,
                 config_problems: tuple[str, ...] = (),
                 followers: Callable[[], list[int]] = list,
                 snapshot_path: str | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._problems = config_problems
        self._followers = followers
        self._snapshot = snapshot_path
        self._wall = wall
        self._started = clock()
        self._samples: collections.deque[tuple[float, dict[str, int]]] = collections.deque()
        self._lock = threading.Lock()

    def start(self) -> None:
        internal.spawn("kubemeta-health", "sampling the request counters", self.sample,
                       self._store.stopped, every=SAMPLE_EVERY)

    def sample(self) -> None:
        now = self._clock()
        with self._lock:
            self._samples.append((now, dict(self._store.counters.apirequests)))
            while self._samples and now - self._samples[0][0] > WINDOW + SAMPLE_EVERY:
                self._samples.popleft()

    def _last_minute(self) -> dict[str, int]:
        self.sample()
        with self._lock:
            now, latest = self._samples[-1]
            base = next((counts for t, counts in self._samples if now - t <= WINDOW), latest)
        return {s: n - base.get(s, 0) for s, n in sorted(latest.items()) if n - base.get(s, 0)}

    def report(self) -> dict[str, Any]:
        store, now = self._store, self._clock()
        breaker = store.breaker()
        pods, namespaces = store.sizes()
        last = store.last_success
        watches = {r: {"up": h.up,
                       "seconds_since_heard": None if h.last_heard is None
                       else round(now - h.last_heard, 1),
                       "last_error": h.last_error}
                   for r, h in dict(store.feeds).items()}
        snapshot_age = None
        if self._snapshot:
            with contextlib.suppress(OSError):
                snapshot_age = round(self._wall() - os.stat(self._snapshot).st_mtime, 1)
        report = {
            "leader": {"pid": os.getpid(), "version": __version__,
                       "seconds_up": round(now - self._started, 1)},
            "followers": sorted(self._followers()),
            "watches": watches,
            "cache": {"pods": pods, "namespaces": namespaces,
                      "snapshot_age_seconds": snapshot_age},
            "api": {"breaker": breaker.state.value,
                    "consecutive_failures": breaker.failures,
                    "next_probe_in_seconds": round(max(0.0, breaker.probe_at - now), 1)
                    if breaker.state is BreakerState.OPEN else None,
                    "seconds_since_success": None if last is None else round(now - last, 1),
                    "last_error": store.last_error,
                    "lookups_pending": store.pending(),
                    "requests_last_minute": self._last_minute()},
            "config_problems": list(self._problems),
            "internal_errors": internal.ERRORS.count,
        }
        report["problems"] = problems(report)
        return report


def problems(report: Mapping[str, Any]) -> list[str]:
    """Why the node is degraded; empty when it is healthy."""
    out = []
    for resource, w in sorted(report.get("watches", {}).items()):
        if not w.get("up"):
            out.append(f"the watch of {resource} is failing"
                       + (f": {w['last_error']}" if w.get("last_error") else ""))
        elif (w.get("seconds_since_heard") or 0) > SILENT_AFTER:
            out.append(f"the watch of {resource} has heard nothing for "
                       f"{w['seconds_since_heard']:.0f} s")
    api = report.get("api", {})
    if api.get("breaker") == BreakerState.OPEN.value:
        out.append("the API is failing (circuit breaker open)"
                   + (f": {api['last_error']}" if api.get("last_error") else ""))
    if report.get("config_problems"):
        out.append(f"{len(report['config_problems'])} problem(s) in the config file")
    return out
