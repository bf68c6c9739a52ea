"""How soon after an API outage ends a pod first seen during it is labelled,
for each fault, through a real rsyslogd with kubemeta's default settings; and
how soon a log-control annotation takes effect.

Known pods are written to throughout; the outage starts, a pod is created (the
API knows it, kubemeta cannot ask), its container logs a line every 50 ms; the
fault lasts ``--outage`` seconds, then the API answers again. Reported: the
seconds from the API's return to the new pod's first labelled line in
rsyslog's output (read every 20 ms), per fault and source, the median of
``--runs``.

    bench/run-recovery.sh             # about 10 minutes
    bench/run-recovery.sh --quick     # one fault, a short outage: checks it works
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the tests' harness and the emulator on the path

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.pki import make_pki
from kubemeta.app import App
from kubemeta.config import Config
from kubemeta.model.identify import PodRef

import outage

FAULTS = {
    "refused": "refused",
    "403": "forbidden",
    "hang": "hang",
    "reset": "reset",
    "429 (Retry-After: 2)": "throttled",
    "503 (Retry-After: 1)": "unavailable",
    "500": "server_error",
    "TLS handshake": "tls",
}
TOKEN = "recovery-token"
# Back to kubemeta's defaults where the outage tests shorten them.
DEFAULTS = {"retry_initial": 1.0, "retry_max": 30.0, "retry_jitter": 1.0,
            "api_read_timeout": 10.0, "api_connect_timeout": 3.0}


def one(tmp: Path, fault: str, source: str, seconds: float, probe: float | None) -> float:
    emu = ApiEmulator(make_pki(str(tmp / "pki"))).start()
    try:
        emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
        token = tmp / "token"
        token.write_text(TOKEN + "\n")
        extra: dict[str, Any] = dict(DEFAULTS)
        if probe is not None:
            extra["api_probe_interval"] = probe
        if source == "watch":
            extra.update(node_name="node-1", watch_start_jitter=0)
        res = outage.run(tmp, emu, token, [(fault, seconds)], **extra)
    finally:
        emu.close()
    outage.check(res)  # nothing lost or doubled, no stall, the same helper
    key = outage.key_of(*outage.NEW)
    return min(t for t, r in res.records if t >= res.recovered_at
               and r["log"].startswith(f"{key} seq ")
               and r.get("kubernetes", {}).get("labels")) - res.recovered_at


def annotation_delays(tmp: Path, changes: int) -> list[float]:
    """Seconds from a pod's log-control annotation changing in the API to the
    helper's store serving the pod with its mark, with source watch (in process:
    the helper's own store, fed by its watch over HTTPS)."""
    emu = ApiEmulator(make_pki(str(tmp / "pki"))).start()
    try:
        emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
        emu.world.apply(make_namespace("shop"))
        emu.world.apply(make_pod("shop", "noisy", {"app": "noisy"}))
        app = App(Config(kubernetes_url=emu.url, ca_file=emu.pki.ca_file, token=TOKEN,
                         node_name="node-1", log_control=True, watch_start_jitter=0))
        store = app.start_store(app.store())
        app.start_watches(store, warm=False)
        ref = PodRef("shop", "noisy", "app", None, None)

        def marked() -> bool | None:
            pe, _ = store.lookup(ref, time.monotonic() + 5)
            return None if pe is None or pe.value is None else (
                ("kubemeta_exclude", "true") in pe.value.extra)

        delays = []
        for i in range(changes):
            on = i % 2 == 0
            ann = {"kubemeta.io/exclude": "true"} if on else {}
            t0 = time.monotonic()
            emu.world.apply(make_pod("shop", "noisy", {"app": "noisy"}, ann))
            while marked() is not on:
                if time.monotonic() - t0 > 30:
                    raise AssertionError("the annotation never took effect")
                time.sleep(0.001)
            delays.append(time.monotonic() - t0)
        store.stop()
        return delays
    finally:
        emu.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outage", type=float, default=20.0, help="seconds (default 20)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    ap.add_argument("--sources", default="get,watch")
    ap.add_argument("--probe-interval", type=float, default=None,
                    help="api_probe_interval (default: kubemeta's); 0 probes by the retry "
                         "backoff alone")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    faults = dict(FAULTS)
    if a.quick:
        faults, a.outage, a.runs = {"refused": "refused"}, 3.0, 1
    sources = a.sources.split(",")
    probe = "" if a.probe_interval is None else f", api_probe_interval {a.probe_interval:g}"
    print(f"Seconds from the API's return to the first labelled line of a pod created "
          f"during a {a.outage:g} s outage (median of {a.runs}; lines every 0.05 s{probe}):\n")
    print("| fault | " + " | ".join(f"`source: {s}`" for s in sources) + " |")
    print("| --- |" + " ---: |" * len(sources))
    for name, fault in faults.items():
        cells = []
        for source in sources:
            took = []
            for r in range(a.runs):
                with tempfile.TemporaryDirectory(prefix="kubemeta-recovery-") as d:
                    took.append(one(Path(d), fault, source, a.outage, a.probe_interval))
                print(f"  {name} {source} run {r + 1}: {took[-1]:.2f} s", file=sys.stderr)
            cells.append(f"{statistics.median(took):.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubemeta-recovery-") as d:
        delays = annotation_delays(Path(d), 4 if a.quick else 20)
    print(f"\nlog_control: from an annotation's change in the API to kubemeta serving its "
          f"mark (source watch, {len(delays)} changes): median "
          f"{statistics.median(delays) * 1000:.0f} ms, at most {max(delays) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
