"""kubemeta alone: through a pipe as rsyslog feeds it, its memory, and its time
to a first reply."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from common import BENCH, BIG_NODE, NODE, PYTHON, Pod, Results, log_text

from apiemulator import ApiEmulator

from harness import (
    KUBEMETA_BIN,
    container_log,
    fulljson,
    kubemeta_config,
)


def cpu_seconds(pid: int) -> float:
    """User + system seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """VmHWM, not wait4's ru_maxrss: Linux carries the latter across exec, so it
    would count the pages of this process that the child had before exec."""
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmHWM:"):
            return int(ln.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


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
        return cpu_seconds(self.proc.pid)

    def peak_rss(self) -> float:
        return peak_rss_mib(self.proc.pid)

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
    deadline = time.monotonic() + 30
    while snapshot_pods(tmp / "state") < len(pods):
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


def snapshot_pods(state_dir: Path) -> int:
    """The pods in the snapshot the node's helpers wrote in ``state_dir``."""
    try:
        path = next(state_dir.glob("snapshot-*.json"))
        return len(json.loads(path.read_bytes()).get("pods") or ())
    except (StopIteration, OSError, ValueError):
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

