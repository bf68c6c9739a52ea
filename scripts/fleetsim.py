"""Simulate a fleet of nodes against the API emulator, for each source.

Each simulated node runs kubemeta's own metadata store, fed by the chosen
source (get, watch or kubelet), and asks it for its pods' metadata as log lines
arrive. Every node talks to one emulator over real HTTPS (a kubelet of its own
for source kubelet); the emulator counts the requests. Time runs ``--scale``
times faster: every TTL, timeout, jitter and interval is divided by it. Pods
are replaced at ``--churn`` per hour, and at ``--restart-at`` every node's
helper restarts at once (as when a fleet's rsyslogs restart), with its
warm-start snapshot.

Reported per source: API requests per node per hour (steady state, and over the
whole run), and the peak request rate in the minutes after the mass restart,
for the simulated nodes and scaled linearly to ``--fleet`` nodes (each node's
requests are independent of the others', so the rate grows with their number).
A peak is the highest average over ``PEAK_WINDOW`` seconds: the busiest single
second of a few simulated nodes says more about chance than about a fleet,
where thousands of independent requests even out. Then an API outage (403 for
``--outage-minutes``) with a pod new to every node: the request rate during
and after it, and how soon each node labels that pod.

    .venv/bin/python scripts/fleetsim.py                # about 6 minutes
    .venv/bin/python scripts/fleetsim.py --quick        # a few seconds, a smoke test
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # the installed kubemeta (a venv's, or the Debian package's), else the checkout's
    import kubemeta  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The API emulator is a development package of the repository, never installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "devel"))

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.objects import container_id
from apiemulator.pki import make_pki
from kubemeta.app import App
from kubemeta.cache.store import MetadataStore
from kubemeta.config import Config
from kubemeta.model.identify import PodRef

TOKEN = "fleet-token-0123456789"
API_KINDS_EXCLUDED = ("kubelet_",)  # the kubelet's requests never reach the API server


@dataclass
class Args:
    nodes: int
    pods: int
    namespaces: int
    fleet: int
    scale: float
    minutes: float
    restart_at: float
    churn: float
    line_interval: int
    start_delay: int
    sources: list[str]
    outage_at: float
    outage_minutes: float
    jitter: float | None = None  # watch_start_jitter; None: kubemeta's default


@dataclass
class Node:
    name: str
    cfg: Config
    pods: list[str] = field(default_factory=list)
    store: MetadataStore | None = None

    def start(self, snapshot: Any = None) -> None:
        app = App(self.cfg)
        store = app.store()
        if snapshot is not None:
            # The warm start: what the previous helper wrote at exit.
            rng = random.Random()
            pods, nss, deleted = snapshot
            store.preload(pods, nss, deleted, lambda: rng.uniform(0.5, 1.0))
        app.start_store(store)
        if self.cfg.effective_source() == "watch":
            app.start_watches(store, warm=snapshot is not None)
        self.store = store

    def restart(self) -> None:
        assert self.store is not None
        snapshot = self.store.export(time.monotonic())
        self.store.stop()
        self.start(snapshot)


def scaled_config(emu: ApiEmulator, node: str, source: str, scale: float,
                  kubelet_url: str, jitter: float | None = None) -> Config:
    d = Config() if jitter is None else Config(watch_start_jitter=jitter)
    return Config(
        kubernetes_url=emu.url, ca_file=emu.pki.ca_file, token=TOKEN, node_name=node,
        source=source, kubelet_url=kubelet_url, log_level="error",
        pod_cache_ttl=d.pod_cache_ttl / scale, namespace_cache_ttl=d.namespace_cache_ttl / scale,
        not_found_ttl=d.not_found_ttl / scale, error_retry_interval=d.error_retry_interval / scale,
        watch_timeout=d.watch_timeout / scale,
        watch_inactivity_timeout=d.watch_inactivity_timeout / scale,
        watch_start_jitter=d.watch_start_jitter / scale,
        kubelet_refresh_interval=d.kubelet_refresh_interval / scale,
        kubelet_min_interval=d.kubelet_min_interval / scale,
        retry_initial=d.retry_initial / scale, retry_max=d.retry_max / scale,
        retry_jitter=d.retry_jitter / scale, api_probe_interval=d.api_probe_interval / scale,
        api_probe_window=d.api_probe_window / scale, lookup_workers=2)


def api_requests(emu: ApiEmulator) -> int:
    with emu.world.lock:
        return sum(n for kind, n in emu.world.by_kind.items()
                   if not kind.startswith(API_KINDS_EXCLUDED))


PEAK_WINDOW = 10  # simulated seconds


def top(per_second: list[int]) -> float:
    """The highest average rate over PEAK_WINDOW consecutive seconds."""
    if len(per_second) <= PEAK_WINDOW:
        return sum(per_second) / max(1, len(per_second))
    return max(sum(per_second[i:i + PEAK_WINDOW]) / PEAK_WINDOW
               for i in range(len(per_second) - PEAK_WINDOW + 1))


def simulate(source: str, a: Args, workdir: Path) -> dict[str, float]:
    # Importing the client takes half a second, in the real helper as here; in
    # simulated time that would be minutes, so it is done before the clock starts.
    import kubemeta.kube.kubeapi  # noqa: F401, PLC0415

    rng = random.Random(42)
    emu = ApiEmulator(make_pki(str(workdir / source))).start()
    emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
    emu.world.bookmark_interval = 60 / a.scale
    namespaces = [f"ns-{i}" for i in range(a.namespaces)]
    for ns in namespaces:
        emu.world.apply(make_namespace(ns, {"team": ns}))
    nodes: list[Node] = []
    serial = 0

    born: dict[str, int] = {}  # a pod's first simulated second; it logs from a.start_delay on

    def new_pod(node: Node, t: int = -10**9) -> None:
        nonlocal serial
        serial += 1
        ns = namespaces[serial % len(namespaces)]
        name = f"pod-{serial}"
        emu.world.apply(make_pod(ns, name, {"app": name}, node=node.name))
        node.pods.append(f"{ns}/{name}")
        born[f"{ns}/{name}"] = t

    for i in range(a.nodes):
        name = f"node-{i}"
        url = emu.start_kubelet(name).url if source == "kubelet" else "https://127.0.0.1:1"
        node = Node(name, scaled_config(emu, name, source, a.scale, url, a.jitter))
        for _ in range(a.pods):
            new_pod(node)
        nodes.append(node)
    emu.reset_counters()
    for node in nodes:
        node.start()

    tick = 1.0 / a.scale  # one simulated second
    seconds = int(a.minutes * 60)
    per_second: list[int] = []
    last = api_requests(emu)
    churn_per_pod_second = a.churn / 3600
    start = time.monotonic()
    outage_start, outage_end = int(a.outage_at * 60), int((a.outage_at + a.outage_minutes) * 60)
    during: dict[str, Node] = {}  # the pods created as the outage begins, by key
    labelled_after: dict[str, int] = {}  # seconds from the outage's end to their labels
    for t in range(seconds):
        if t == int(a.restart_at * 60):
            for node in nodes:
                node.restart()
        if t == outage_start:
            # A control plane's restart: 403 for a while. Every node gets a pod
            # the API knows of and kubemeta cannot ask about.
            emu.set_phase("forbidden")
            for node in nodes:
                new_pod(node, t)
                during[node.pods[-1]] = node
        if t == outage_end:
            emu.set_phase("ok")
        if t >= outage_end:
            for key, node in during.items():
                if key in labelled_after or node.store is None:
                    continue
                ns, pod = key.split("/")
                pe, _ = node.store.lookup(PodRef(ns, pod, "app", None, None), time.monotonic(),
                                          time.monotonic())
                if pe is not None and pe.value is not None:
                    labelled_after[key] = t - outage_end
        for node in nodes:
            assert node.store is not None
            now = time.monotonic()
            for k, key in enumerate(node.pods):
                if (k + t) % a.line_interval == 0 and t - born[key] >= a.start_delay:
                    ns, pod = key.split("/")
                    ref = PodRef(ns, pod, "app", container_id(ns, pod, "app"), None)
                    node.store.lookup(ref, now, now)  # a line never waits here
            for key in list(node.pods):
                if rng.random() < churn_per_pod_second:
                    ns, pod = key.split("/")
                    emu.world.delete("Pod", ns, pod)
                    node.pods.remove(key)
                    new_pod(node, t)
        count = api_requests(emu)
        per_second.append(count - last)
        last = count
        delay = start + (t + 1) * tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for node in nodes:
        if node.store is not None:
            node.store.stop()
    emu.close()

    hours = a.minutes / 60
    restart = int(a.restart_at * 60)
    warm = min(600, restart // 2)
    # Steady state: neither the start nor the outage and the minutes after it.
    calm = [n for t, n in enumerate(per_second[:restart])
            if t >= warm and not outage_start <= t < outage_end + 120]
    steady = sum(calm) / max(1, len(calm)) * 3600 / a.nodes
    peak = top(per_second[restart:restart + 300])
    out = per_second[outage_start:outage_end]
    waits = sorted(labelled_after.values())
    return {
        "outage_rate": sum(out) / max(1, len(out)) * a.fleet / a.nodes,
        "outage_peak": top(out) * a.fleet / a.nodes,
        "recovery_peak": top(per_second[outage_end:outage_end + 60]) * a.fleet / a.nodes,
        "labelled": len(waits) / max(1, len(during)),
        "label_median": waits[len(waits) // 2] if waits else float("nan"),
        "label_max": waits[-1] if waits else float("nan"),
        "steady_per_node_hour": steady,
        "total_per_node_hour": sum(per_second) / a.nodes / hours,
        "peak_after_restart": peak,
        "peak_fleet": peak * a.fleet / a.nodes,
        "lag": time.monotonic() - start - seconds * tick,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=20, help="simulated nodes (default 20)")
    p.add_argument("--pods", type=int, default=30, help="pods per node (default 30)")
    p.add_argument("--namespaces", type=int, default=20)
    p.add_argument("--fleet", type=int, default=5000, help="fleet size to scale to")
    p.add_argument("--scale", type=float, default=30.0, help="how much faster time runs")
    p.add_argument("--minutes", type=float, default=60.0, help="simulated minutes")
    p.add_argument("--restart-at", type=float, default=40.0, help="simulated minute of the "
                   "mass restart")
    p.add_argument("--churn", type=float, default=0.5, help="pods replaced per pod per hour")
    p.add_argument("--line-interval", type=int, default=10,
                   help="simulated seconds between two lines of a pod")
    p.add_argument("--start-delay", type=int, default=5,
                   help="simulated seconds from a pod's creation to its first line (its "
                        "containers start)")
    p.add_argument("--sources", default="get,watch,kubelet")
    p.add_argument("--outage-at", type=float, default=20.0, help="simulated minute an API "
                   "outage (403) begins; each node gets a new pod then")
    p.add_argument("--outage-minutes", type=float, default=2.0)
    p.add_argument("--watch-start-jitter", type=float, default=None,
                   help="watch_start_jitter (default: kubemeta's)")
    p.add_argument("--quick", action="store_true", help="a tiny run, to check the script")
    ns = p.parse_args()
    # The simulated helpers' own logs (watch cuts at the end, and so on) are not the report.
    quiet = logging.getLogger("kubemeta")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    a = Args(ns.nodes, ns.pods, ns.namespaces, ns.fleet, ns.scale, ns.minutes, ns.restart_at,
             ns.churn, ns.line_interval, ns.start_delay, ns.sources.split(","), ns.outage_at,
             ns.outage_minutes, ns.watch_start_jitter)
    if ns.quick:
        a.nodes, a.pods, a.namespaces, a.scale, a.minutes, a.restart_at = 3, 20, 3, 120, 12, 8
        a.outage_at, a.outage_minutes = 1.5, 0.5
    print(f"{a.nodes} simulated nodes x {a.pods} pods, {a.namespaces} namespaces, churn "
          f"{a.churn}/pod/h, a line per pod every {a.line_interval} s, mass restart at minute "
          f"{a.restart_at:g} of {a.minutes:g}; time x{a.scale:g}; scaled to {a.fleet} nodes\n")
    print("| source | API requests per node per hour (steady) | per node per hour "
          f"(whole run, with start, outage and restart) | peak API requests/s ({PEAK_WINDOW} s "
          f"average) after the mass restart ({a.nodes} nodes) | same, {a.fleet} nodes |")
    print("| --- | ---: | ---: | ---: | ---: |")
    results = {}
    with tempfile.TemporaryDirectory(prefix="kubemeta-fleet-") as tmp:
        for source in a.sources:
            r = results[source] = simulate(source, a, Path(tmp))
            # A request rate measured per simulated second.
            print(f"| `{source}` | {r['steady_per_node_hour']:.0f} | "
                  f"{r['total_per_node_hour']:.0f} | {r['peak_after_restart']:.1f} | "
                  f"{r['peak_fleet']:.0f} |", flush=True)
            if r["lag"] > a.minutes * 60 / a.scale * 0.2:
                print(f"(the {source} run fell {r['lag']:.0f} s behind simulated time: "
                      f"lower --scale for exact figures)", file=sys.stderr)
    print(f"\nAn outage: the API answers 403 from minute {a.outage_at:g} for "
          f"{a.outage_minutes:g} minutes, and each node gets a new pod as it begins "
          f"(requests scaled to {a.fleet} nodes; seconds are simulated):\n")
    print(f"| source | API requests/s during the outage (mean) | (peak, {PEAK_WINDOW} s average) "
          "| peak API requests/s "
          "in the minute after it | new pods labelled | seconds after the outage until "
          "labelled (median) | (max) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for source, r in results.items():
        print(f"| `{source}` | {r['outage_rate']:.0f} | {r['outage_peak']:.0f} | "
              f"{r['recovery_peak']:.0f} | {r['labelled']:.0%} | {r['label_median']:.0f} | "
              f"{r['label_max']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
