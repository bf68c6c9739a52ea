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
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "devel"))  # the API emulator

from apiemulator import ApiEmulator, make_namespace, make_pod  # noqa: E402
from apiemulator.pki import make_pki  # noqa: E402
from kubemeta import jsonlib  # noqa: E402

from harness import (  # noqa: E402
    DOCKER,
    KUBEMETA_BIN,
    RSYSLOGD,
    SHIPPED,
    Rsyslog,
    container_log,
    docker_line,
    fulljson,
    kubemeta_config,
    shipped_snippet,
)

PYTHON = "/usr/bin/python3"  # rsyslog execs helpers with no PATH
NODE = "node-1"
BIG_NODE = "node-big"
TOKEN = "bench-token"
MMK_MODULE = Path("/usr/lib/x86_64-linux-gnu/rsyslog/mmkubernetes.so")

# The output every rsyslog mode shares: cheap to render, and it shows whether
# the record was enriched (pod name and a label), which the benchmark checks.
OUTPUT = """
template(name="bench_out" type="string"
         string="%$!kubernetes!namespace_name% %$!kubernetes!pod_name% %$!kubernetes!labels!app%\\n")
ruleset(name="kubemeta_output") {{
    action(type="omfile" file="{out}" template="bench_out" asyncWriting="off")
}}
"""  # noqa: E501

SECTIONS = ("rsyslog", "pipe", "start", "rss")
MODES = ("kubemeta", "mmkubernetes", "trivial", "canned", "none", "kubemeta-poll")
# Measured at every worker count; the others at the shipped count only.
SCALED = ("kubemeta", "mmkubernetes", "trivial", "kubemeta-poll")
BUSY_POLL = 0.0001  # kubemeta-poll's busy_poll setting
MODE_TITLES = {
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

def rsyslog_body(mode: str, tmp: Path, kcfg: Path, emu: ApiEmulator, token: Path) -> str:
    """The shipped docker snippet with only its action swapped for ``mode``."""
    text = shipped_snippet(tmp, kcfg, name=DOCKER)
    action = re.compile(r'action\(type="mmexternal".*?\)\n', re.S)
    if not action.search(text):
        raise SystemExit(f"cannot find the mmexternal action in {DOCKER}")
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
        # "<ns> <pod> <app>": all three present only when the record was enriched.
        self.enriched += sum(1 for ln in done.split(b"\n") if ln and b"" not in ln.split(b" "))
        return self.lines

    def wait(self, n: int, timeout: float, alive: Callable[[], bool]) -> float:
        """The time the n-th line was written (the file's mtime)."""
        end = time.monotonic() + timeout
        while self.poll() < n:
            if time.monotonic() > end or not alive():
                raise RuntimeError(f"{self.path}: {self.lines} of {n} lines after {timeout} s")
            time.sleep(0.02)
        return os.stat(self.path).st_mtime


def shipped_workers() -> int:
    m = re.search(r'queue\.workerThreads="(\d+)"', (SHIPPED / DOCKER).read_text())
    if m is None:
        raise SystemExit(f"no queue.workerThreads in {DOCKER}")
    return int(m.group(1))


def rsyslog_run(mode: str, tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod],
                per_pod: int, workers: int) -> float:
    """Lines per second through rsyslogd, cache warm, for one mode."""
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
    enrich = mode in ("kubemeta", "kubemeta-poll", "mmkubernetes", "canned")
    block = "".join(docker_line(log_text(i)) for i in range(per_pod))
    with rs:
        alive = lambda: rs.proc is not None and rs.proc.poll() is None  # noqa: E731
        # Warm up: one line per pod until every pod's line comes out enriched.
        for attempt in range(100):
            for f in files:
                with open(f, "a") as fh:
                    fh.write(docker_line(f"warm-up {attempt}"))
            before = counter.enriched
            counter.wait(len(files) * (attempt + 1), 60, alive)
            if not enrich or counter.enriched - before == len(files):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{mode}: the cache never became warm")
        warm = counter.lines
        counter.enriched = 0
        start = time.time()
        for f in files:
            with open(f, "a") as fh:
                fh.write(block)
        total = len(files) * per_pod
        end = counter.wait(warm + total, 600, alive)
    if enrich and counter.enriched != total:
        raise RuntimeError(f"{mode}: only {counter.enriched} of {total} lines were enriched")
    return total / (end - start)


# -- through a pipe ------------------------------------------------------------------

class PipePeer:
    """A helper on a pipe, asked one line at a time as rsyslog's mmexternal does."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env={})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()

    def ask(self, line: bytes) -> bytes:
        os.write(self._in, line)
        reply = os.read(self._out, 1 << 20)
        while not reply.endswith(b"\n"):
            more = os.read(self._out, 1 << 20)
            if not more:
                raise RuntimeError(f"helper exited; last output {reply[-500:]!r}")
            reply += more
        return reply

    def cpu(self) -> float:
        """User + system seconds so far, from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss(self) -> float:
        """MiB. VmHWM, not wait4's ru_maxrss: Linux carries the latter across exec, so
        it would count the pages of this process that the child had before exec."""
        for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc")

    def finish(self) -> float:
        """Closes stdin and waits for a clean exit; the peak RSS in MiB."""
        assert self.proc.stdin is not None
        rss = self.peak_rss()
        self.proc.stdin.close()
        if self.proc.wait(60) != 0:
            raise RuntimeError(f"{self.proc.args!r} exited {self.proc.returncode}")
        return rss


def record(path: Path, text: str) -> bytes:
    return fulljson(str(path), log=text + "\n", stream="stdout",
                    time="2026-11-21T10:00:00.000000001Z") + b"\n"


def kubemeta_argv(kcfg: Path) -> list[str]:
    return [str(KUBEMETA_BIN), "mmexternal", "--config", str(kcfg)]


def warm_helper(peer: PipePeer, lines: list[bytes], label: bytes) -> dict[bytes, bytes]:
    """Asks until every line's reply carries ``label``; the replies by line."""
    for _ in range(300):
        replies = {ln: peer.ask(ln) for ln in lines}
        if all(label in r for r in replies.values()):
            return replies
        time.sleep(0.1)
    raise RuntimeError("kubemeta's cache never became warm")


def pipe_runs(tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod], total: int,
              runs: int, res: Results) -> None:
    """kubemeta and the reference loop, alternating."""
    files = [container_log(tmp, p.namespace, p.name, "app") for p in pods]
    per_pod = max(1, total // len(files))
    lines = [record(f, log_text(i)) for i in range(per_pod) for f in files]
    warm_lines = [record(f, "warm-up") for f in files]
    kcfg = kubemeta_config(tmp, emu, token, node_name=NODE, log_level="info")
    replies_file = tmp / "replies.json"
    for r in range(runs):
        order = ("kubemeta", "reference") if r % 2 == 0 else ("reference", "kubemeta")
        for who in order:
            if who == "kubemeta":
                peer = PipePeer(kubemeta_argv(kcfg))
                replies = warm_helper(peer, warm_lines, b'"labels"')
                replies_file.write_text(json.dumps({
                    str(f): replies[w].decode() for f, w in zip(files, warm_lines, strict=True)}))
            else:
                peer = PipePeer([PYTHON, str(BENCH / "reference.py"), str(replies_file)])
                for w in warm_lines:
                    peer.ask(w)
            cpu0, t0 = peer.cpu(), time.perf_counter()
            ask = peer.ask
            for ln in lines:
                ask(ln)
            t1, cpu1 = time.perf_counter(), peer.cpu()
            rss = peer.finish()
            res.pipe.setdefault(who, []).append(len(lines) / (t1 - t0))
            res.cpu.setdefault(who, []).append((cpu1 - cpu0) * 1000 / len(lines) * 1000)
            if who == "kubemeta":
                res.rss[f"{len(pods)}"] = max(res.rss.get(f"{len(pods)}", 0), rss)


def rss_many(tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod]) -> float:
    """Peak RSS (MiB) of a helper whose node runs ``pods``, one line of each asked,
    through at least one snapshot write (which a long-lived helper does now and then)."""
    kcfg = kubemeta_config(tmp, emu, token, node_name=BIG_NODE, log_level="info",
                           snapshot_interval=1)
    lines = [record(container_log(tmp, p.namespace, p.name, "app"), "hello") for p in pods]
    peer = PipePeer(kubemeta_argv(kcfg))
    warm_helper(peer, lines[-1:], b'"labels"')
    for ln in lines:
        if b'"labels"' not in peer.ask(ln):
            raise RuntimeError(f"not enriched: {ln[:200]!r}")
    snapshot = tmp / "state" / "snapshot.json"
    deadline = time.monotonic() + 30
    while snapshot_pods(snapshot) < len(pods):
        if time.monotonic() > deadline:
            raise RuntimeError("the helper wrote no snapshot of all its pods")
        time.sleep(0.2)
    return peer.finish()


def anonymous_mib(pid: int) -> float:
    """A process's anonymous memory: its own heap and stacks, not the files it maps
    (a shared view's pages are the page cache's, one copy per node)."""
    for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if ln.startswith("Anonymous:"):
            return int(ln.split()[1]) / 1024
    raise RuntimeError("no Anonymous in smaps_rollup")


def follower_memory(tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod], node: str,
                    asked: int) -> float:
    """Anonymous memory (MiB) of a follower whose leader shares ``pods`` (listed by
    its watch), after it answered lines of the first ``asked`` of them: what a
    node's second, third... helper spends on metadata. The same ``asked`` for
    every size keeps the per-file caches (the file-name memo) out of the comparison."""
    kcfg = kubemeta_config(tmp, emu, token, node_name=node, log_level="info")
    lines = [record(container_log(tmp, p.namespace, p.name, "app"), "hello")
             for p in pods[:asked]]
    leader = PipePeer(kubemeta_argv(kcfg))  # first: it takes the lock
    warm_helper(leader, lines[-1:], b'"labels"')
    log = tmp / "kubemeta.log"
    listed = re.compile(rf"pods on node {re.escape(node)}: listed (\d+)")
    shared = re.compile(r"serving from the view this node's leading helper shares \((\d+) ")
    deadline = time.monotonic() + 60
    while largest(log, listed) < len(pods):  # so that the follower's first view has all
        if time.monotonic() > deadline:
            raise RuntimeError("the leader never listed every pod")
        time.sleep(0.2)
    follower = PipePeer(kubemeta_argv(kcfg))
    while largest(log, shared) < len(pods):
        if time.monotonic() > deadline:
            raise RuntimeError("the follower never served from a view of every pod")
        time.sleep(0.2)
    for ln in lines:
        if b'"labels"' not in follower.ask(ln):
            raise RuntimeError(f"not enriched by the follower: {ln[:200]!r}")
    mib = anonymous_mib(follower.proc.pid)
    follower.finish()
    leader.finish()
    return mib


def largest(log: Path, number: re.Pattern[str]) -> int:
    """The largest number ``number`` captured in ``log`` so far."""
    return max((int(n) for n in number.findall(log.read_text())), default=0)


def snapshot_pods(path: Path) -> int:
    try:
        return len(json.loads(path.read_bytes()).get("pods") or ())
    except (OSError, ValueError):
        return 0


def first_replies(tmp: Path, emu: ApiEmulator, token: Path, pods: list[Pod], runs: int,
                  res: Results) -> None:
    """A restart on a node whose pods a snapshot knows, and a first start."""
    kcfg = kubemeta_config(tmp, emu, token, node_name=NODE, log_level="info")
    line = record(container_log(tmp, pods[0].namespace, pods[0].name, "app"), "first")
    peer = PipePeer(kubemeta_argv(kcfg))
    warm_helper(peer, [line], b'"labels"')
    peer.finish()  # leaves the snapshot behind
    res.first["warm"], enriched = first_reply(kcfg, line, runs)
    if not enriched:
        raise RuntimeError("the first reply of a warm start was not enriched")
    (tmp / "cold").mkdir()
    cold_cfg = kubemeta_config(tmp, emu, token, node_name=NODE, log_level="info",
                               snapshot_interval=0, state_dir=str(tmp / "cold"))
    res.first["cold"], res.first_enriched = first_reply(cold_cfg, line, runs)


def first_reply(kcfg: Path, line: bytes, runs: int) -> tuple[list[float], bool]:
    """Seconds from exec to the first reply; and whether the reply was enriched."""
    out = []
    enriched = True
    for _ in range(runs):
        t0 = time.perf_counter()
        peer = PipePeer(kubemeta_argv(kcfg))
        reply = peer.ask(line)
        out.append(time.perf_counter() - t0)
        enriched = enriched and b'"labels"' in reply
        peer.finish()
    return out, enriched


# -- report --------------------------------------------------------------------------

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
                    lps = rsyslog_run(mode, run_dir, emu, token, pods, per_pod, w)
                    res.requests[key] = emu.world.total
                    res.rsyslog.setdefault(key, []).append(lps)
                    print(f"  rsyslogd {key:18} run {r + 1}: {lps:,.0f} lines/s",
                          file=sys.stderr)
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
