"""Counters out: an rsyslog impstats-style JSON line, and Prometheus's text format.

Formatting is pure; StatsWriter is the thread that writes both files every
``stats_interval`` seconds. The Prometheus file is replaced atomically, as node
exporter's textfile collector requires (see files).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubemeta import files, internal
from kubemeta.cache.policy import BreakerState
from kubemeta.clock import SYSTEM, Clock

log = logging.getLogger("kubemeta.shell.stats")

_BREAKER = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
_GAUGES = {"breakerstate", "secondssincelastsuccess", "lookupspending", "configproblems",
           "watchup", "watchsecondssinceheard"}
_LABEL = {"apirequests": "status"}  # the label of a metric with several values; else resource

_HELP = {
    "recordseen": "records that named a pod",
    "linesstale": "lines served with metadata past its TTL",
    "linesfilenameonly": "lines served with file-name fields only",
    "linescri": "CRI records unframed into log, stream and time",
    "linesdeletedpod": "lines served with the metadata of a pod since deleted",
    "sinklines": "omprog mode: enriched lines the sink took",
    "sinkfailures": "omprog mode: sink writes that failed (rsyslog retries them)",
    "sharedviewtooold": "views a follower dropped because its leader stopped vouching for them",
    "breakerstate": "0 closed (API healthy), 1 open (failing), 2 half-open (probing)",
    "secondssincelastsuccess": "seconds since the API last answered a lookup, a list or a "
                               "watch (events and bookmarks count; -1: never)",
    "lookupspending": "lookups waiting for the API",
    "apirequests": "API requests by HTTP status (0: no answer)",
    "internalerrors": "internal errors: bugs or an unusable library, not API outages",
    "watchup": "1 while the list-and-watch of this resource works, 0 while it fails "
               "(cached metadata is served meanwhile)",
    "watchsecondssinceheard": "seconds since the watch of this resource last heard from the "
                              "API (an event or a bookmark; -1: never); rises while the API "
                              "hangs",
    "configproblems": "problems in the config file at start; while above 0, kubemeta runs "
                      "with the file's valid values (or the last good file): fix it, restart",
}


def snapshot(store: Any, now: float, config_problems: int = 0) -> dict[str, Any]:
    """All counters as a flat dict; ``store`` is a MetadataStore."""
    c = store.counters
    out: dict[str, Any] = {k: v for k, v in vars(c).items() if k != "apirequests"}
    pods, nss = store.sizes()
    out["podcachenumentries"] = pods
    out["namespacecachenumentries"] = nss
    out["lookupspending"] = store.pending()
    out["breakerstate"] = _BREAKER[store.breaker_state()]
    last = store.last_success
    out["secondssincelastsuccess"] = -1 if last is None else round(now - last, 1)
    out["internalerrors"] = internal.ERRORS.count
    out["configproblems"] = config_problems
    out["apirequests"] = dict(c.apirequests)
    feeds = dict(store.feeds)
    if feeds:
        out["watchup"] = {r: int(h.up) for r, h in feeds.items()}
        out["watchsecondssinceheard"] = {
            r: -1 if h.last_heard is None else round(now - h.last_heard, 1)
            for r, h in feeds.items()}
    return out


def impstats_line(values: dict[str, Any], name: str) -> str:
    """One line as rsyslog's impstats writes in json format."""
    flat: dict[str, Any] = {"name": name, "origin": "kubemeta"}
    for k, v in values.items():
        if isinstance(v, dict):
            for status, n in sorted(v.items()):
                flat[f"{k}.{status}"] = n
        else:
            flat[k] = v
    return json.dumps(flat, separators=(",", ":"))


def prometheus_text(values: dict[str, Any]) -> str:
    lines = []
    for k, v in values.items():
        metric = f"kubemeta_{k}"
        gauge = k in _GAUGES or k.endswith("numentries")
        lines.append(f"# HELP {metric} {_HELP.get(k, k)}")
        lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
        if isinstance(v, dict):
            label = _LABEL.get(k, "resource")
            lines.extend(f'{metric}{{{label}="{s}"}} {n}' for s, n in sorted(v.items()))
        else:
            lines.append(f"{metric} {v}")
    return "\n".join(lines) + "\n"


class StatsWriter:
    def __init__(self, store: Any, name: str, interval: float, stats_file: str | None,
                 prometheus_file: str | None,
                 clock: Clock = SYSTEM,
                 prometheus: Callable[[], bool] = lambda: True,
                 config_problems: int = 0) -> None:
        """``prometheus``: whether this helper writes the Prometheus file now (of
        several helpers sharing a node, the leader does; each appends its own
        line to ``stats_file``)."""
        self._prometheus = prometheus
        self._store = store
        self._name = name
        self._interval = interval
        self._stats_file = stats_file
        self._prom_file = prometheus_file
        self._clock = clock
        self._failed: set[str] = set()  # the files whose last write failed
        self._config_problems = config_problems

    def enabled(self) -> bool:
        return bool(self._stats_file or self._prom_file)

    def start(self, stop: threading.Event) -> None:
        if self.enabled():
            internal.spawn("kubemeta-stats", "the counters writer", self.write, stop,
                           every=self._interval, wait_first=True)

    def write(self) -> None:
        values = snapshot(self._store, self._clock(), self._config_problems)
        failed: list[str] = []
        if self._stats_file:
            self._try(self._stats_file, failed, lambda path: files.append(
                path, (impstats_line(values, self._name) + "\n").encode()))
        if self._prom_file and self._prometheus():
            # node-exporter reads it, as a user of its own.
            self._try(self._prom_file, failed, lambda path: files.replace(
                path, prometheus_text(values).encode(), 0o644))
        self._failed = set(failed)

    def _try(self, path: str, failed: list[str], write: Callable[[str], None]) -> None:
        """One file; a failure is logged once per streak, not every interval."""
        try:
            write(path)
        except OSError as e:
            if path not in self._failed:
                log.error("cannot write counters to %s: %s", path, e.strerror or e,
                          extra={"event": "stats_error"})
            failed.append(path)
