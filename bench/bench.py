"""kubemeta's benchmark: throughput, memory, start-up and CPU, as a table.

Everything runs on this machine against the bundled API emulator (HTTPS):

- through a real rsyslogd reading docker json-file lines (cache warm): kubemeta
  with the shipped mmexternal snippet, Debian's mmkubernetes, a trivial helper
  that answers ``{}`` (the protocol's ceiling), and no enrichment; every mode
  runs the shipped snippet's ruleset and queue, only the action differs;
- kubemeta alone, fed fulljson lines through a pipe one at a time as rsyslog
  does, against a minimal reference loop (bench/reference.py);
- peak RSS with few and with many pods cached, time from start to first reply,
  CPU per 1,000 lines.

Each figure is the median of ``--runs`` runs, the modes alternating. Targets
are ratios between figures of the same run, so they hold on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from common import (  # the first: it puts tests/ and devel/ on the path
    BENCH,
    BIG_NODE,
    BUSY_POLL,
    MMK_MODULE,
    MODES,
    NODE,
    OUTPUT,
    PYTHON,
    SCALED,
    SECTIONS,
    TOKEN,
    Pod,
    Results,
    log_text,
    populate,
    shipped_workers,
)
from probes import (
    PipePeer,
    cpu_seconds,
    first_replies,
    follower_memory,
    kubemeta_argv,
    peak_rss_mib,
    pipe_runs,
    record,
    rss_many,
    warm_helper,
)
from table import med, report

from apiemulator import ApiEmulator
from apiemulator.pki import make_pki

from harness import (
    DOCKER,
    TABLE_DOCKER,
    Daemon,
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    wait_table,
)


def rsyslog_body(mode: str, tmp: Path, kcfg: Path, emu: ApiEmulator, token: Path) -> str:
    """The shipped docker snippet with only its action swapped for ``mode`` (table
    mode: the shipped table snippet)."""
    text = shipped_snippet(tmp, kcfg, name=TABLE_DOCKER if mode == "table" else DOCKER)
    action = re.compile(r'action\(type="mmexternal".*?\)\n', re.S)
    if not action.search(text):
        raise SystemExit(f"cannot find the mmexternal action in {DOCKER}")
    if mode == "table":
        # Marks a miss for the output; a hit runs none of this.
        text = action.sub(lambda m: 'set $.kubemeta_miss = "1";\n        ' + m.group(0), text)
    if mode not in ("kubemeta", "table"):
        # Only kubemeta's replies name their record: the other helpers' would be
        # dropped by the shipped guard.
        guard = re.compile(r" *if \$!kubemeta_of!offset.*?unset \$!kubemeta_of;\n", re.S)
        text, n = guard.subn("", text)
        if n != 1:
            raise SystemExit(f"cannot find the reply guard in {DOCKER}")
    if mode == "trivial":
        text = re.sub(r'binary="[^"]*"', f'binary="{PYTHON} {BENCH / "trivial.py"}"', text)
    elif mode == "canned":
        text = re.sub(r'binary="[^"]*"',
                      f'binary="{PYTHON} {BENCH / "trivial.py"} {tmp / "reply.json"}"', text)
    elif mode == "none":
        text = action.sub("", text).replace('module(load="mmexternal")\n', "")
    elif mode == "mmkubernetes":
        rule = (f"rule=:{tmp / 'containers'}/%pod_name:char-to:_%_%namespace_name:char-to:_%_"
                "%container_name_and_id:char-to:.%.log")
        text = action.sub('action(type="mmkubernetes")\n', text).replace(
            'module(load="mmexternal")',
            f'module(load="mmkubernetes" kubernetesurl="{emu.url}" '
            f'tls.cacert="{emu.pki.ca_file}" tokenfile="{token}" filenamerules=["{rule}"])')
    return text


class OutputCounter:
    """Counts the lines rsyslog has written, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self.enriched = 0
        self.hits = 0
        self._pos = 0
        self._tail = b""

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return 0
        self._pos += len(data)
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        done, self._tail = data[:cut], data[cut:]
        self.lines += done.count(b"\n")
        for ln in done.split(b"\n"):
            # "<$! as JSON>|<miss>": labels only when the record was enriched;
            # <miss> is 1 when table mode asked its helper.
            record, _, miss = ln.rpartition(b"|")
            if b'"labels"' in record:
                self.enriched += 1
                if miss == b"":
                    self.hits += 1
        return self.lines

    def wait(self, n: int, timeout: float, alive: Callable[[], bool]) -> float:
        """The time the n-th line was written (the file's mtime)."""
        end = time.monotonic() + timeout
        while self.poll() < n:
            if time.monotonic() > end or not alive():
                raise RuntimeError(f"{self.path}: {self.lines} of {n} lines after {timeout} s")
            time.sleep(0.02)
        return os.stat(self.path).st_mtime


def rsyslog_run(mode: str, tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod],
                per_pod: int, workers: int, res: Results) -> float:
    """Lines per second through rsyslogd, cache warm, for one mode. Table mode also
    notes its daemon's and helpers' CPU and the daemon's RSS in ``res``."""
    kcfg = kubemeta_config(tmp, emu, token, node_name=NODE, log_level="info",
                           busy_poll=BUSY_POLL if mode == "kubemeta-poll" else 0.0)
    body = rsyslog_body(mode.removesuffix("-poll"), tmp, kcfg, emu, token)
    body = re.sub(r'queue\.workerThreads="\d+"', f'queue.workerThreads="{workers}"', body)
    rs = Rsyslog(tmp, body + OUTPUT.format(out=tmp / "out.txt"), "rsyslog", output=False)
    files = [container_log(tmp, p.namespace, p.name, "app") for p in pods]
    if mode == "canned":
        # kubemeta's own reply for the first pod, given to every line.
        peer = PipePeer(kubemeta_argv(kcfg))
        line = record(files[0], "canned")
        (tmp / "reply.json").write_bytes(warm_helper(peer, [line], b'"labels"')[line])
        peer.finish()
    counter = OutputCounter(tmp / "out.txt")
    enrich = mode in ("kubemeta", "kubemeta-poll", "mmkubernetes", "canned", "table")
    block = "".join(docker_line(log_text(i)) for i in range(per_pod))
    daemon = Daemon(kcfg).start() if mode == "table" else None
    try:
        return _measure(rs, files, counter, enrich, block, per_pod, mode, daemon, res)
    finally:
        if daemon is not None:
            daemon.stop()


def _measure(rs: Rsyslog, files: list[Path], counter: OutputCounter, enrich: bool, block: str,
             per_pod: int, mode: str, daemon: Daemon | None, res: Results) -> float:
    with rs:
        alive = lambda: rs.proc is not None and rs.proc.poll() is None  # noqa: E731
        # Warm up: one line per pod until every pod's line comes out enriched.
        for attempt in range(100):
            for f in files:
                with open(f, "a") as fh:
                    fh.write(docker_line(f"warm-up {attempt}"))
            before, hits = counter.enriched, counter.hits
            counter.wait(len(files) * (attempt + 1), 60, alive)
            # Table mode is warm once the table (reloaded) enriches every file.
            ready = counter.enriched - before == len(files) and (
                daemon is None or counter.hits - hits == len(files))
            if not enrich or ready:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{mode}: the cache never became warm")
        warm = counter.lines
        counter.enriched = 0
        cpu0 = _cpu(daemon, rs)
        start = time.time()
        for f in files:
            with open(f, "a") as fh:
                fh.write(block)
        total = len(files) * per_pod
        end = counter.wait(warm + total, 600, alive)
        if daemon is not None and daemon.proc is not None:
            cpu1 = _cpu(daemon, rs)
            res.daemon_cpu.append((cpu1[0] - cpu0[0]) * 1e6 / total)
            res.table_helper_cpu.append((cpu1[1] - cpu0[1]) * 1e6 / total)
            res.daemon_rss.append(peak_rss_mib(daemon.proc.pid))
    if enrich and counter.enriched != total:
        raise RuntimeError(f"{mode}: only {counter.enriched} of {total} lines were enriched")
    return total / (end - start)


def _cpu(daemon: Daemon | None, rs: Rsyslog) -> tuple[float, float]:
    """The daemon's CPU seconds, and its helpers' (helpers that exited meanwhile
    are not counted: rsyslog keeps its helpers while it runs)."""
    if daemon is None or daemon.proc is None:
        return 0.0, 0.0
    return cpu_seconds(daemon.proc.pid), sum(cpu_seconds(p) for p in rs.helpers())


def daemon_many(tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod]) -> float:
    """Peak RSS (MiB) of ``kubemeta serve`` whose node runs ``pods``, each with a log
    file, once its table holds them all."""
    kcfg = kubemeta_config(tmp, emu, token, node_name=BIG_NODE, log_level="info")
    for p in pods:
        container_log(tmp, p.namespace, p.name, "app").touch()
    daemon = Daemon(kcfg).start()
    try:
        assert daemon.proc is not None
        wait_table(tmp, lambda t: len(t) == len(pods), timeout=300)
        return peak_rss_mib(daemon.proc.pid)
    finally:
        daemon.stop()


# -- through a pipe ------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    ap.add_argument("--lines", type=int, default=200_000, help="lines per run (default 200000)")
    ap.add_argument("--pods", type=int, default=100, help="pods writing them (default 100)")
    ap.add_argument("--many-pods", type=int, default=10_000,
                    help="pods cached for the second RSS figure (default 10000)")
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"rsyslogd modes, comma-separated (default {','.join(MODES)})")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"what to measure, comma-separated (default {','.join(SECTIONS)})")
    ap.add_argument("--workers", default="1,2,4",
                    help="queue.workerThreads to measure kubemeta, mmkubernetes and the "
                         "trivial helper at (default 1,2,4); the other modes run at the "
                         "shipped snippet's count")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, one run: checks that the benchmark works, measures nothing")
    ap.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.lines, args.pods, args.many_pods = 1, 2000, 10, 300
        args.workers = "1,2"
    counts = sorted({int(x) for x in args.workers.split(",") if x})
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; modes are {', '.join(MODES)}")
    if "mmkubernetes" in modes and not MMK_MODULE.exists():
        print(f"{MMK_MODULE} is missing (Debian package rsyslog-kubernetes); "
              "skipping mmkubernetes", file=sys.stderr)
        modes.remove("mmkubernetes")

    sections = [x for x in args.sections.split(",") if x]
    for x in sections:
        if x not in SECTIONS:
            ap.error(f"unknown section {x!r}; sections are {', '.join(SECTIONS)}")
    tmp = Path(tempfile.mkdtemp(prefix="kubemeta-bench-"))
    res = Results()
    emu = ApiEmulator(make_pki(str(tmp / "pki"))).start()
    try:
        emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
        token = tmp / "token"
        token.write_text(TOKEN + "\n")
        pods = populate(emu, args.pods, NODE, "", max(1, args.pods // 10))
        per_pod = max(1, args.lines // len(pods))
        print(f"benchmark in {tmp}", file=sys.stderr)
        if "rsyslog" in sections:
            shipped = shipped_workers()
            plan = [(m, w) for w in counts for m in modes if m in SCALED or w == shipped]
            if not any(w == shipped for _, w in plan):
                plan += [(m, shipped) for m in modes if m not in SCALED]
            for r in range(args.runs):
                # Alternate the order, so no mode always runs on a cooler machine.
                order = plan[r % len(plan):] + plan[:r % len(plan)]
                for mode, w in order:
                    key = f"{mode}@{w}"
                    run_dir = tmp / f"rsyslog-{mode}-{w}-{r}"
                    run_dir.mkdir()
                    emu.reset_counters()
                    lps = rsyslog_run(mode, run_dir, emu, token, pods, per_pod, w, res)
                    res.requests[key] = emu.world.total
                    res.rsyslog.setdefault(key, []).append(lps)
                    print(f"  rsyslogd {key:18} run {r + 1}: {lps:,.0f} lines/s",
                          file=sys.stderr)
                    if not args.keep:
                        shutil.rmtree(run_dir, ignore_errors=True)
        pipe_dir = tmp / "pipe"
        pipe_dir.mkdir()
        if "pipe" in sections:
            pipe_runs(pipe_dir, emu, token, pods, args.lines, args.runs, res)
            print(f"  pipe: kubemeta {med(res.pipe['kubemeta']):,.0f} lines/s, reference "
                  f"{med(res.pipe['reference']):,.0f} lines/s", file=sys.stderr)
        if "start" in sections:
            first_replies(pipe_dir, emu, token, pods, max(3, args.runs), res)
        if "rss" in sections:
            many = populate(emu, args.many_pods, BIG_NODE, "big-",
                            max(1, args.many_pods // 100))
            big_dir = tmp / "big"
            big_dir.mkdir()
            res.rss[str(args.many_pods)] = rss_many(big_dir, emu, token, many)
            daemon_dir = tmp / "daemon-many"
            daemon_dir.mkdir()
            res.daemon_many[str(args.many_pods)] = daemon_many(daemon_dir, emu, token, many)
            for n, group, node in ((args.pods, pods, NODE), (args.many_pods, many, BIG_NODE)):
                share_dir = tmp / f"share-{n}"
                share_dir.mkdir()
                res.follower[str(n)] = follower_memory(share_dir, emu, token, group, node,
                                                       asked=args.pods)
    finally:
        emu.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    table, met = report(res, args, args.pods, args.many_pods)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res.__dict__, indent=2))
    if args.quick:
        return 0
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
