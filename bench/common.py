"""What the benchmark's parts share: its settings, the cluster it makes, the
results it collects."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "devel"))  # the API emulator

from apiemulator import ApiEmulator, make_namespace, make_pod  # noqa: E402

from harness import (  # noqa: E402
    DOCKER,
    RSYSLOGD,
    SHIPPED,
)

__all__ = ["RSYSLOGD"]

PYTHON = "/usr/bin/python3"  # rsyslog execs helpers with no PATH
NODE = "node-1"
BIG_NODE = "node-big"
TOKEN = "bench-token"
MMK_MODULE = Path("/usr/lib/x86_64-linux-gnu/rsyslog/mmkubernetes.so")

# The output every rsyslog mode shares: cheap to render, and it shows whether
# the record was enriched (pod name and a label), which the benchmark checks.
# The whole record as JSON, as the shipped outputs write it (the cost of writing
# the metadata is part of enriching), then "|1" when the table mode's helper was
# asked (a miss; bench.py marks it).
OUTPUT = """
template(name="bench_out" type="string" string="%$!%|%$.kubemeta_miss%\\n")
ruleset(name="kubemeta_output") {{
    action(type="omfile" file="{out}" template="bench_out" asyncWriting="off")
}}
"""

SECTIONS = ("rsyslog", "pipe", "start", "rss")
MODES = ("table", "kubemeta", "mmkubernetes", "trivial", "canned", "none", "kubemeta-poll")
# Measured at every worker count; the others at the shipped count only.
SCALED = ("table", "kubemeta", "mmkubernetes", "trivial", "kubemeta-poll")
BUSY_POLL = 0.0001  # kubemeta-poll's busy_poll setting
MODE_TITLES = {
    "table": "kubemeta table mode (lookup table kept by `kubemeta serve`)",
    "kubemeta": "kubemeta (mmexternal)",
    "kubemeta-poll": f"kubemeta, busy_poll {BUSY_POLL * 1e6:.0f} µs",
    "mmkubernetes": "mmkubernetes",
    "trivial": "trivial `{}` helper",
    "canned": "fixed-reply helper (kubemeta's reply, no work)",
    "none": "no enrichment",
}


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str

    @property
    def app(self) -> str:
        return self.name.rsplit("-", 2)[0]


@dataclass
class Results:
    rsyslog: dict[str, list[float]] = field(default_factory=dict)
    pipe: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    follower: dict[str, float] = field(default_factory=dict)  # anonymous MiB by pods
    first: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    first_enriched: bool = False
    # Table mode: the daemon's CPU (ms per 1,000 lines) and peak RSS (MiB) in the
    # rsyslogd runs, the helpers' CPU per 1,000 lines, and the daemon with many pods.
    daemon_cpu: list[float] = field(default_factory=list)
    daemon_rss: list[float] = field(default_factory=list)
    table_helper_cpu: list[float] = field(default_factory=list)
    daemon_many: dict[str, float] = field(default_factory=dict)


# -- the cluster ------------------------------------------------------------------

def populate(emu: ApiEmulator, pods: int, node: str, prefix: str, namespaces: int) -> list[Pod]:
    """``pods`` pods on ``node`` with labels and annotations of a typical size."""
    out = []
    for n in range(namespaces):
        emu.world.apply(make_namespace(
            f"{prefix}ns-{n}", {"team": f"team-{n % 7}", "env": "prod",
                                "kubernetes.io/metadata.name": f"{prefix}ns-{n}"},
            {"owner.example.com/contact": f"team-{n % 7}@example.com"}))
    for i in range(pods):
        ns = f"{prefix}ns-{i % namespaces}"
        app = f"{prefix}app{i}"
        name = f"{app}-7d9f8c6b5-{i:05d}"
        emu.world.apply(make_pod(
            ns, name,
            {"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop",
             "app.kubernetes.io/version": "1.4.2", "pod-template-hash": "7d9f8c6b5",
             "tier": "backend"},
            {"prometheus.io/scrape": "true", "prometheus.io/port": "9102",
             "kubectl.kubernetes.io/restartedAt": "2026-11-01T00:00:00Z"},
            node=node, containers=("app",)))
        out.append(Pod(ns, name))
    return out


def log_text(i: int) -> str:
    return (f"10.1.{i % 250}.{i % 97} - - \"GET /api/v1/items/{i} HTTP/1.1\" 200 "
            f"{i % 4096} \"-\" \"client/2.{i % 9}\" rt={i % 113}ms")


# -- through rsyslogd --------------------------------------------------------------

def shipped_workers() -> int:
    m = re.search(r'queue\.workerThreads="(\d+)"', (SHIPPED / DOCKER).read_text())
    if m is None:
        raise SystemExit(f"no queue.workerThreads in {DOCKER}")
    return int(m.group(1))


