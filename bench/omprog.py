"""omprog mode's delivery and what it costs, through a real rsyslogd.

kills: the shipped 50-kubemeta-omprog.conf at 400 lines/s with kubemeta
SIGKILLed 4 times, ten runs in a row for each sink kind (unix, file, tcp):
lines lost (the target is 0 in every run) and duplicates.

throughput: lines per second through omprog mode with useTransactions on
(shipped) and off, into the shipped unix sink and back into rsyslog.

    /usr/bin/python3 bench/omprog.py [--runs 10] [--sections kills,throughput]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "devel"))  # the API emulator

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.pki import make_pki

from harness import (
    OMPROG,
    Rsyslog,
    container_log,
    cri_line,
    enriched_socket,
    kubemeta_config,
    shipped_snippet,
)
from omprogkill import SINKS, kill_run

TOKEN = "bench-token"


def kills(tmp: Path, emu: ApiEmulator, token: Path, runs: int) -> tuple[str, bool]:
    rows = ["| sink | runs | lines per run | kills per run | lost (every run) "
            "| duplicates per run (min, median, max) |", "| --- | --- | --- | --- | --- | --- |"]
    ok = True
    for sink in SINKS:
        lost, dups, lines = [], [], []
        for r in range(runs):
            d = tmp / f"kills-{sink}-{r}"
            d.mkdir()
            run = kill_run(d, emu, token, sink)
            lost.append(len(run.lost))
            dups.append(run.duplicates)
            lines.append(run.written)
            print(f"  kills {sink} run {r + 1}: {run.written} lines, {run.kills} kills, "
                  f"{len(run.lost)} lost, {run.duplicates} duplicates", file=sys.stderr)
        ok = ok and not any(lost)
        rows.append(f"| {sink} | {runs} | {min(lines):,} to {max(lines):,} | 4 | "
                    f"{', '.join(map(str, lost))} | {min(dups)}, "
                    f"{statistics.median(dups):g}, {max(dups)} |")
    return "\n".join(rows), ok


def throughput(tmp: Path, emu: ApiEmulator, token: Path, runs: int, lines: int) -> str:
    rows = ["| useTransactions | lines/s (median of runs) |", "| --- | --- |"]
    for tx in ("on", "off"):
        figures = []
        for r in range(runs):
            d = tmp / f"tput-{tx}-{r}"
            d.mkdir()
            cfg = kubemeta_config(d, emu, token, sink=f"unix:{enriched_socket(d)}",
                                  log_level="info")
            snippet = shipped_snippet(d, cfg, name=OMPROG)
            assert 'useTransactions="on"' in snippet
            snippet = snippet.replace('useTransactions="on"', f'useTransactions="{tx}"')
            path = container_log(d, "shop", "web-1", "app")
            path.write_text("".join(cri_line(f"seq {i}", "stdout", "2026-11-21T10:00:00Z")
                                    for i in range(lines)))
            rs = Rsyslog(d, snippet)
            with rs:
                t0 = time.monotonic()
                rs.wait_records(lines, timeout=600)
                figures.append(lines / (time.monotonic() - t0))
            print(f"  throughput useTransactions={tx} run {r + 1}: {figures[-1]:,.0f} lines/s",
                  file=sys.stderr)
        rows.append(f"| {tx}{' (shipped)' if tx == 'on' else ''} | "
                    f"{statistics.median(figures):,.0f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="kill runs per sink (default 10)")
    ap.add_argument("--lines", type=int, default=20_000, help="lines per throughput run")
    ap.add_argument("--sections", default="kills,throughput")
    args = ap.parse_args()
    sections = args.sections.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="kubemeta-bench-omprog-"))
    emu = ApiEmulator(make_pki(str(tmp / "pki"))).start()
    ok = True
    try:
        emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
        token = tmp / "token"
        token.write_text(TOKEN + "\n")
        emu.world.apply(make_namespace("shop", {"team": "shop"}))
        emu.world.apply(make_pod("shop", "web-1", {"app": "web-1"}))
        if "kills" in sections:
            table, ok = kills(tmp, emu, token, args.runs)
            print(table + "\n")
        if "throughput" in sections:
            print(throughput(tmp, emu, token, 3, args.lines))
    finally:
        emu.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
