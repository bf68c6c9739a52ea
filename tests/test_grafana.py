"""The shipped Grafana dashboard asks only for metrics kubemeta writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kubemeta.cache.counters import FeedHealth
from kubemeta.shell.nodecounters import NodeCounters
from kubemeta.shell.stats import StatsWriter

from fakes import store_with_traffic
from harness import REPO

DASHBOARD = REPO / "contrib" / "grafana" / "kubemeta.json"


def written_metrics(tmp: Path) -> set[str]:
    """Every metric name in a Prometheus file kubemeta wrote, with watches and
    helpers sharing a node, so that nothing optional is missing."""
    store, clock = store_with_traffic()
    store.feeds["pods"] = FeedHealth(up=True, last_heard=clock())
    prom = tmp / "kubemeta.prom"
    StatsWriter(store, "kubemeta(x)", 60, None, str(prom), clock,
                node=NodeCounters(str(tmp), "g")).write()
    return {line.split()[2] for line in prom.read_text().splitlines()
            if line.startswith("# TYPE ")}


def queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for v in node.values() for q in queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in queries(v)]
    return []


def test_every_query_names_only_metrics_kubemeta_writes(tmp_path: Path) -> None:
    known = written_metrics(tmp_path)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard["panels"])
    assert len(exprs) >= 20
    used = set()
    for expr in exprs:
        names = set(re.findall(r"\bkubemeta_[a-z_]+", expr))
        assert names, f"a query with no kubemeta metric: {expr}"
        assert names <= known, f"{expr}: kubemeta writes no {sorted(names - known)}"
        used |= names
    variable = dashboard["templating"]["list"][1]["definition"]
    assert set(re.findall(r"\bkubemeta_[a-z_]+", variable)) <= known
    # The health an operator alerts on is all there.
    assert {"kubemeta_watchup", "kubemeta_watchsecondssinceheard", "kubemeta_apirequests_total",
            "kubemeta_helpers", "kubemeta_configproblems"} <= used
