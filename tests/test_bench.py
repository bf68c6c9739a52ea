"""The shipped benchmark still works: every section runs and every mode's lines
come out (enriched where the mode enriches). Nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import REPO


def test_quick_benchmark_runs_every_section_and_mode(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    p = subprocess.run([sys.executable, str(REPO / "bench" / "bench.py"), "--quick",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    figures = json.loads(out.read_text())
    scaled = {"table", "kubemeta", "trivial", "kubemeta-poll"}
    if Path("/usr/lib/x86_64-linux-gnu/rsyslog/mmkubernetes.so").exists():
        scaled.add("mmkubernetes")
    want = {f"{m}@{w}" for m in scaled for w in (1, 2)} | {"canned@2", "none@2"}
    assert set(figures["rsyslog"]) == want
    assert all(v > 0 for runs in figures["rsyslog"].values() for v in runs)
    assert set(figures["pipe"]) == {"kubemeta", "reference"}
    assert set(figures["first"]) == {"warm", "cold"}
    assert figures["first_enriched"] is True  # a cold start waits for the client once
    assert set(figures["rss"]) == {"10", "300"}
    assert set(figures["follower"]) == {"10", "300"}
    assert set(figures["daemon_many"]) == {"300"}
    assert len(figures["daemon_cpu"]) == len(figures["table_helper_cpu"]) == 2
    assert all(v > 0 for v in figures["follower"].values())
    for row in ("rsyslogd, 2 workers (shipped), kubemeta (mmexternal)", "pipe, reference loop",
                "peak RSS, 300 pods cached", "first reply, warm start (snapshot)",
                "follower's anonymous memory, 300 pods shared"):
        assert row in p.stdout


def test_quick_recovery_benchmark_labels_the_new_pod_after_the_outage() -> None:
    p = subprocess.run([sys.executable, str(REPO / "bench" / "recovery.py"), "--quick"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    row = next(x for x in p.stdout.splitlines() if x.startswith("| refused |"))
    assert all(float(cell) >= 0 for cell in row.strip("| ").split("|")[1:]), row
