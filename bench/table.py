"""The benchmark's table, from its results."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from common import MODE_TITLES, MODES, RSYSLOGD, Results, shipped_workers

from kubemeta import jsonlib


def machine() -> dict[str, str]:
    cpu = "unknown"
    for ln in Path("/proc/cpuinfo").read_text().splitlines():
        if ln.startswith("model name"):
            cpu = ln.split(":", 1)[1].strip()
            break
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    rsv = subprocess.run([RSYSLOGD, "-v"], capture_output=True, text=True,
                         check=False).stdout.split("\n")[0]
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"Debian {debian}, Linux {platform.release()}",
        "python": f"{platform.python_version()} ({sys.executable})",
        "json": jsonlib.ACTIVE.name,
        "rsyslog": rsv.replace("compiled with:", "").strip(),
    }


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(res: Results, args: argparse.Namespace, pods: int, big: int) -> tuple[str, bool]:
    rows: list[tuple[str, str]] = []
    shipped = shipped_workers()
    counts = sorted({int(k.split("@")[1]) for k in res.rsyslog})
    for w in counts:
        for mode in MODES:
            key = f"{mode}@{w}"
            if key in res.rsyslog:
                star = " (shipped)" if w == shipped else ""
                rows.append((f"rsyslogd, {w} worker{'s' if w > 1 else ''}{star}, "
                             f"{MODE_TITLES[mode]}", f"{med(res.rsyslog[key]):,.0f} lines/s"))
    for who, title in (("kubemeta", "kubemeta"), ("reference", "reference loop")):
        if who in res.pipe:
            rows.append((f"pipe, {title}", f"{med(res.pipe[who]):,.0f} lines/s"))
    for who, title in (("kubemeta", "kubemeta"), ("reference", "reference loop")):
        if who in res.cpu:
            rows.append((f"CPU per 1,000 lines, {title}", f"{med(res.cpu[who]):.1f} ms"))
    if str(pods) in res.rss:
        rows.append((f"peak RSS, {pods} pods cached", f"{res.rss[str(pods)]:.1f} MiB"))
    if str(big) in res.rss:
        rows.append((f"peak RSS, {big:,} pods cached", f"{res.rss[str(big)]:.1f} MiB"))
    for n in (pods, big):
        if str(n) in res.follower:
            rows.append((f"follower's anonymous memory, {n:,} pods shared",
                         f"{res.follower[str(n)]:.1f} MiB"))
    if res.daemon_cpu:
        rows.append(("table mode: `kubemeta serve` CPU per 1,000 lines",
                     f"{med(res.daemon_cpu):.2f} ms"))
        rows.append(("table mode: the helpers' CPU per 1,000 lines (hits need none)",
                     f"{med(res.table_helper_cpu):.2f} ms"))
        rows.append((f"table mode: `kubemeta serve` peak RSS, {pods} pods",
                     f"{max(res.daemon_rss):.1f} MiB"))
    if str(big) in res.daemon_many:
        rows.append((f"table mode: `kubemeta serve` peak RSS, {big:,} pods and files",
                     f"{res.daemon_many[str(big)]:.1f} MiB"))
    for key, title in (("warm", "first reply, warm start (snapshot)"),
                       ("cold", "first reply, cold start (no snapshot)")):
        if key in res.first:
            how = "" if key == "warm" else (
                " (enriched)" if res.first_enriched else " (file-name fields only)")
            rows.append((title, f"{med(res.first[key]) * 1000:.0f} ms{how}"))

    targets: list[tuple[str, str, bool]] = []

    def ratio(name: str, a: list[float] | None, b: list[float] | None, floor: float) -> None:
        if a and b:
            x = med(a) / med(b)
            targets.append((name, f"{x:.2f}x (target >= {floor}x)", x >= floor))

    mmk = [res.rsyslog[f"mmkubernetes@{w}"] for w in counts
           if f"mmkubernetes@{w}" in res.rsyslog]
    best_mmk = max(mmk, key=med) if mmk else None
    ratio(f"rsyslogd: kubemeta, {shipped} workers (shipped) / mmkubernetes at its best",
          res.rsyslog.get(f"kubemeta@{shipped}"), best_mmk, 1.0)
    for w in counts:
        ratio(f"rsyslogd: kubemeta / trivial helper, {w} worker{'s' if w > 1 else ''}",
              res.rsyslog.get(f"kubemeta@{w}"), res.rsyslog.get(f"trivial@{w}"), 0.9)
    for w in counts:
        ratio(f"rsyslogd: table mode / mmkubernetes, {w} worker{'s' if w > 1 else ''}",
              res.rsyslog.get(f"table@{w}"), res.rsyslog.get(f"mmkubernetes@{w}"), 1.3)
    ratio(f"rsyslogd: table mode / no enrichment, {shipped} workers",
          res.rsyslog.get(f"table@{shipped}"), res.rsyslog.get(f"none@{shipped}"), 0.5)
    if str(big) in res.daemon_many:
        mib = res.daemon_many[str(big)]
        targets.append((f"table mode: `kubemeta serve` peak RSS, {big:,} pods",
                        f"{mib:.1f} MiB (target < 80 MiB)", mib < 80))
    ratio("pipe: kubemeta / reference loop", res.pipe.get("kubemeta"),
          res.pipe.get("reference"), 0.8)
    if "warm" in res.first:
        ms = med(res.first["warm"]) * 1000
        targets.append(("first reply (warm start)", f"{ms:.0f} ms (target <= 200 ms)",
                        ms <= 200))
    if str(big) in res.rss:
        targets.append((f"peak RSS, {big:,} pods", f"{res.rss[str(big)]:.1f} MiB "
                        "(target < 80 MiB)", res.rss[str(big)] < 80))

    if str(pods) in res.follower and str(big) in res.follower:
        growth = res.follower[str(big)] - res.follower[str(pods)]
        targets.append((f"a follower's memory, {big:,} pods against {pods}",
                        f"{growth:+.1f} MiB (target: no growth, < 2 MiB)", growth < 2))
    kubemeta = res.rsyslog.get(f"kubemeta@{shipped}")
    canned = res.rsyslog.get(f"canned@{shipped}")
    if kubemeta and canned:
        # Not a target: how much of the gap to the trivial helper is kubemeta's own work.
        rows.append((f"rsyslogd, {shipped} workers: kubemeta / fixed-reply helper",
                     f"{med(kubemeta) / med(canned):.2f}x"))
    w = max(len(r[0]) for r in rows + [(t[0], "") for t in targets])
    out = [f"kubemeta benchmark: median of {args.runs} runs; {args.lines:,} lines from "
           f"{pods} pods", ""]
    out += [f"| {'measure':<{w}} | result |", f"|{'-' * (w + 2)}|--------|"]
    out += [f"| {a:<{w}} | {b} |" for a, b in rows]
    out += ["", f"| {'target':<{w}} | result |", f"|{'-' * (w + 2)}|--------|"]
    out += [f"| {a:<{w}} | {b} {'met' if ok else 'MISSED'} |" for a, b, ok in targets]
    out += ["", "Machine:"] + [f"- {k}: {v}" for k, v in machine().items()]
    if res.requests:
        out += ["", "API requests during the rsyslogd runs: " + ", ".join(
            f"{k} {v}" for k, v in res.requests.items())]
    return "\n".join(out), all(ok for _, _, ok in targets)


# -- main ----------------------------------------------------------------------------

