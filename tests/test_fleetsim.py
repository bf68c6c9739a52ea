"""The fleet simulation script runs, and its figures say what the sources are for."""

from __future__ import annotations

import re
import subprocess
import sys

from harness import REPO


def test_quick_fleet_simulation() -> None:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "fleetsim.py"), "--quick",
                          "--churn", "0"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {m[0]: [float(x) for x in m[1:]] for m in re.findall(
        r"^\| `(\w+)` \| (\d+) \| (\d+) \| ([\d.]+) \| (\d+) \|$", out.stdout, re.M)}
    assert set(rows) == {"get", "watch", "kubelet"}, out.stdout
    # In steady state, per-pod GETs cost the API the most; a node-scoped watch, or
    # the kubelet (the API sees only namespace GETs), far less.
    assert rows["get"][0] > 2 * max(rows["watch"][0], rows["kubelet"][0]), out.stdout
    # An outage (403) during which each node got a new pod: afterwards every one
    # of them is labelled, whatever the source.
    outage = {m[0]: m[1] for m in re.findall(
        r"^\| `(\w+)` \| \d+ \| \d+ \| \d+ \| (\d+)% \| [\d.]+ \| [\d.]+ \|$", out.stdout, re.M)}
    assert outage == {"get": "100", "watch": "100", "kubelet": "100"}, out.stdout
