"""Counters out: an rsyslog impstats-style JSON line, and Prometheus's text format.

Formatting is pure; StatsWriter is the thread that writes both files every
``stats_interval`` seconds. The Prometheus file is replaced atomically, as node
exporter's textfile collector requires (see files).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubemeta import __version__, files, internal
from kubemeta.cache.policy import BreakerState
from kubemeta.clock import SYSTEM, Clock
from kubemeta.shell.nodecounters import NodeCounters

log = logging.getLogger("kubemeta.shell.stats")

_BREAKER = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
_GAUGES = {"breakerstate", "secondssincelastsuccess", "lookupspending", "configproblems",
           "watchup", "watchsecondssinceheard", "helpers", "podcachenumentries",
           "namespacecachenumentries"}
# The labels of a metric with several values, from its keys ("get.200"); else resource.
_LABELS = {"apirequests": ("verb", "status")}

_HELP = {
    "recordseen": "records that named a pod",
    "namespacemetadatasuccess": "namespace metadata served from an answer of the API (as "
                                "mmkubernetes counts it)",
    "namespacemetadatanotfound": "namespaces the API said do not exist",
    "namespacemetadatabusy": "namespace lookups the API answered 429 (too many requests)",
    "namespacemetadataerror": "namespace lookups that failed otherwise (refused, 403, 5xx, "
                              "hang, nonsense)",
    "podmetadatasuccess": "pod metadata served from an answer of the API (as mmkubernetes "
                          "counts it)",
    "podmetadatanotfound": "pods the API said do not exist",
    "podmetadatabusy": "pod lookups the API answered 429 (too many requests)",
    "podmetadataerror": "pod lookups that failed otherwise (refused, 403, 5xx, hang, "
                        "nonsense)",
    "podcachehits": "lines whose pod was in the cache",
    "podcachemisses": "lines whose pod was not in the cache",
    "namespacecachehits": "lines whose namespace was in the cache",
    "namespacecachemisses": "lines whose namespace was not in the cache",
    "linesstale": "lines served with metadata past its TTL",
    "linesfilenameonly": "lines served with file-name fields only",
    "linescri": "CRI records unframed into log, stream and time",
    "linesdeletedpod": "lines served with the metadata of a pod since deleted",
    "sinklines": "omprog mode: enriched lines the sink took",
    "sinkfailures": "omprog mode: sink writes that failed (rsyslog retries them)",
    "kubeletfallbacklists": "kubelet_fallback: lists of the kubelet's pods asked for while "
                            "the API failed",
    "kubeletfallbackpods": "kubelet_fallback: pods taken from the kubelet while the API "
                           "failed (asked of the API once it answers)",
    "sharedviewtooold": "views a follower dropped because its leader stopped vouching for them",
    "breakerstate": "0 closed (API healthy), 1 open (failing), 2 half-open (probing)",
    "secondssincelastsuccess": "seconds since the API last answered a lookup, a list or a "
                               "watch (events and bookmarks count; -1: never)",
    "lookupspending": "lookups waiting for the API",
    "apirequests": "API requests by verb (get, list, watch) and HTTP status (0: no answer)",
    "internalerrors": "internal errors: bugs or an unusable library, not API outages",
    "watchup": "1 while the list-and-watch of this resource works, 0 while it fails "
               "(cached metadata is served meanwhile)",
    "watchsecondssinceheard": "seconds since the watch of this resource last heard from the "
                              "API (an event or a bookmark; -1: never); rises while the API "
                              "hangs",
    "helpers": "this node's helpers of the group that share one view, the leader included",
    "podcachenumentries": "pods in the cache",
    "namespacecachenumentries": "namespaces in the cache",
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


def counts(values: Mapping[str, Any]) -> dict[str, Any]:
    """The counters among ``values`` (what adds up across helpers), not the gauges."""
    return {k: v for k, v in values.items() if k not in _GAUGES}


def impstats_line(values: Mapping[str, Any], name: str) -> str:
    """One line as rsyslog's impstats writes in json format."""
    flat: dict[str, Any] = {"name": name, "origin": "kubemeta"}
    for k, v in values.items():
        if isinstance(v, dict):
            for status, n in sorted(v.items()):
                flat[f"{k}.{status}"] = n
        else:
            flat[k] = v
    return json.dumps(flat, separators=(",", ":"))


def prometheus_text(values: Mapping[str, Any], written: float | None = None) -> str:
    """Prometheus's text format: counters end in _total; ``written`` (Unix time)
    is the file's own timestamp, so a file no one writes any more can be told."""
    lines = [
        "# HELP kubemeta_build_info kubemeta's version, and Python's",
        "# TYPE kubemeta_build_info gauge",
        f'kubemeta_build_info{{version="{__version__}",python="{platform.python_version()}"}} 1',
    ]
    if written is not None:
        lines += ["# HELP kubemeta_last_write_timestamp_seconds when this file was written",
                  "# TYPE kubemeta_last_write_timestamp_seconds gauge",
                  f"kubemeta_last_write_timestamp_seconds {written:.3f}"]
    for k, v in values.items():
        gauge = k in _GAUGES
        metric = f"kubemeta_{k}" if gauge else f"kubemeta_{k}_total"
        lines.append(f"# HELP {metric} {_HELP.get(k, k)}")
        lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
        if isinstance(v, dict):
            names = _LABELS.get(k, ("resource",))
            for key, n in sorted(v.items()):
                parts = key.split(".", len(names) - 1)
                parts = ["unknown"] * (len(names) - len(parts)) + parts
                labels = ",".join(f'{name}="{part}"'
                                  for name, part in zip(names, parts, strict=True))
                lines.append(f"{metric}{{{labels}}} {n}")
        else:
            lines.append(f"{metric} {v}")
    return "\n".join(lines) + "\n"


class StatsWriter:
    """Writes the counters every interval. Each helper appends its own line to
    ``stats_file`` and publishes its counters for the node (``node``); the one
    that ``leads`` also writes the node's: summed over the group's helpers, as a
    line named as mmkubernetes's (``mmkubernetes(<url>)``, which rsyslog_exporter
    reads) and as the Prometheus file."""

    def __init__(self, store: Any, name: str, interval: float, stats_file: str | None,
                 prometheus_file: str | None,
                 clock: Clock = SYSTEM,
                 prometheus: Callable[[], bool] = lambda: True,
                 config_problems: int = 0, node: NodeCounters | None = None,
                 url: str = "", wall: Callable[[], float] = time.time) -> None:
        """``prometheus``: whether this helper writes the node's figures now (of
        several helpers sharing a node, the leader does)."""
        self._leads = prometheus
        self._store = store
        self._name = name
        self._interval = interval
        self._stats_file = stats_file
        self._prom_file = prometheus_file
        self._clock = clock
        self._wall = wall  # the Prometheus file's timestamp: Unix time, not the clock's
        self._failed: set[str] = set()  # the files whose last write failed
        self._config_problems = config_problems
        self._node = node
        self._node_name = f"mmkubernetes({url})"

    def enabled(self) -> bool:
        return bool(self._stats_file or self._prom_file)

    def start(self, stop: threading.Event) -> None:
        if self.enabled():
            internal.spawn("kubemeta-stats", "the counters writer", self.write, stop,
                           every=self._interval, wait_first=True)

    def write(self) -> None:
        values = snapshot(self._store, self._clock(), self._config_problems)
        failed: list[str] = []
        leads = self._leads()
        node = dict(values)
        if self._node is not None:
            shared = self._node
            self._try(shared.path, failed, lambda _: shared.publish(counts(values)))
            if leads:
                self._try(f"the node's counters in {os.path.dirname(shared.path)}", failed,
                          lambda _: node.update(shared.totals(counts(values))))
                node["helpers"] = shared.helpers
        if self._stats_file:
            lines = impstats_line(values, self._name) + "\n"
            if leads:
                lines += impstats_line(node, self._node_name) + "\n"
            self._try(self._stats_file, failed,
                      lambda path: files.append(path, lines.encode()))
        if self._prom_file and leads:
            # node-exporter reads it, as a user of its own.
            self._try(self._prom_file, failed, lambda path: files.replace(
                path, prometheus_text(node, self._wall()).encode(), 0o644))
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
