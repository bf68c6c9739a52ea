"""Several helpers per node, through a real rsyslogd with the shipped docker
setup and 1, 2 or 4 queue worker threads: every line exactly once, the API asked
no more than by one helper, the leader killed mid-stream and another taking
over, and no helper orphaned by idle worker threads."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    DOCKER,
    KUBEMETA_BIN,
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    wait_log,
    write_lines,
)

PODS = 12


def helpers_of(cfg: Path) -> list[int]:
    """The kubemeta helpers running with this test's config, wherever their parent
    is: a helper orphaned by rsyslog counts too (another test's never does)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it just exited
        if str(KUBEMETA_BIN).encode() in cmd[:2] and str(cfg).encode() in cmd:
            out.append(int(d.name))
    return out


def snippet(tmp: Path, cfg: Path, workers: int, shutdown: str = "-1") -> str:
    text = shipped_snippet(tmp, cfg, name=DOCKER)
    assert 'queue.timeoutWorkerThreadShutdown="-1"' in text
    text = re.sub(r'queue\.workerThreads="\d+"', f'queue.workerThreads="{workers}"', text)
    # Start every worker as soon as there is work, so each count is really used.
    text, n = re.subn(r'queue\.workerThreadMinimumMessages="\d+"',
                      'queue.workerThreadMinimumMessages="10"', text)
    assert n == 1
    return text.replace('queue.timeoutWorkerThreadShutdown="-1"',
                        f'queue.timeoutWorkerThreadShutdown="{shutdown}"')


def cluster(emu: ApiEmulator) -> list[tuple[str, str]]:
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    emu.world.apply(make_namespace("data", {"team": "data"}))
    pods = [("shop" if i % 2 else "data", f"app{i}-0") for i in range(PODS)]
    for ns, name in pods:
        emu.world.apply(make_pod(ns, name, {"app": name}))
    return pods


def run_lines(tmp: Path, emu: ApiEmulator, token_file: Path, workers: int, per_pod: int,
              **settings: Any) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """Records out, API requests made (their kinds: pod_list, pod, ...), helper
    pids seen."""
    pods = cluster(emu)
    cfg = kubemeta_config(tmp, emu, token_file, log_level="info", **settings)
    files = [container_log(tmp, ns, name, "app") for ns, name in pods]
    emu.reset_counters()
    seen: set[int] = set()
    with Rsyslog(tmp, snippet(tmp, cfg, workers)) as rs:
        for k in range(per_pod):
            for f in files:
                write_lines(f, [docker_line(f"{f.name.split('_')[0]} {k}")])
        recs = rs.wait_records(len(files) * per_pod, timeout=120)
        seen.update(helpers_of(cfg))
        time.sleep(0.5)
        recs = rs.records()
        # Counted before rsyslog stops: a follower that takes the lead while the
        # helpers are being stopped lists again, which is no cost of sharing.
        with emu.world.lock:
            made = [r["kind"] for r in emu.world.requests]
    return recs, made, sorted(seen)


def assert_exactly_once_and_enriched(recs: list[dict[str, Any]], per_pod: int) -> None:
    got = sorted(r["log"].strip() for r in recs)
    want = sorted(f"app{i}-0 {k}" for i in range(PODS) for k in range(per_pod))
    assert got == want, "every line exactly once"
    for r in recs:
        pod = r["log"].split()[0]
        assert r["kubernetes"]["labels"] == {"app": pod}, r


@pytest.mark.parametrize("source", ["get", "watch"])
def test_helpers_share_one_view_whatever_their_number(tmp_path: Path, emulator: ApiEmulator,
                                                      token_file: Path, source: str) -> None:
    requests: dict[int, list[str]] = {}
    for workers in (1, 2, 4):
        tmp = tmp_path / f"w{workers}"
        tmp.mkdir()
        recs, requests[workers], pids = run_lines(
            tmp, emulator, token_file, workers, 150, source=source, node_name="node-1",
            watch_start_jitter=0)
        assert_exactly_once_and_enriched(recs, 150)
        assert 1 <= len(pids) <= workers
        if workers == 4:
            assert len(pids) >= 2, "several helpers did share the work"
        log = (tmp / "kubemeta.log").read_text()
        assert log.count("leader of this node's helpers") == 1
        assert log.count("follower of this node's helpers") == len(pids) - 1
        if len(pids) >= 2:  # followers splice replies from the leader's view
            assert "serving from the view this node's leading helper shares" in log
    single = len(requests[1])
    assert single > 0
    for workers in (2, 4):
        # One helper's requests, not one per helper (workers x single), and not one
        # more either: a follower's question asked while the leader starts waits
        # for the leader's first lists, as the leader's own lines do.
        assert len(requests[workers]) <= single, requests


class Writer(threading.Thread):
    def __init__(self, files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.n = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for f in self.files:
                write_lines(f, [docker_line(f"seq {self.n} {f.name.split('_')[0]}")])
                self.n += 1
            time.sleep(0.01)


def leader_pid(log: Path) -> int:
    m = re.findall(r"kubemeta\[(\d+)\]: INFO kubemeta .* leader of this node's helpers",
                   log.read_text())
    assert m, "no leader logged"
    return int(m[-1])


def test_the_leader_killed_mid_stream_another_takes_over(tmp_path: Path, emulator: ApiEmulator,
                                                          token_file: Path) -> None:
    pods = cluster(emulator)
    cfg = kubemeta_config(tmp_path, emulator, token_file, log_level="debug", node_name="node-1",
                          watch_start_jitter=0)
    files = [container_log(tmp_path, ns, name, "app") for ns, name in pods]
    log = tmp_path / "kubemeta.log"

    def view_has_the_pods() -> bool:
        text = log.read_text() if log.exists() else ""
        return any(int(n) >= PODS + 2 for n in re.findall(r"loaded the shared view \((\d+) ", text))

    with Rsyslog(tmp_path, snippet(tmp_path, cfg, 2)) as rs:
        writer = Writer(files)
        writer.start()
        deadline = time.monotonic() + 30
        while len(helpers_of(cfg)) < 2:
            assert time.monotonic() < deadline, "rsyslog never started two helpers"
            time.sleep(0.1)
        # Mid-stream: the leader has listed and published, and the follower has
        # the view, which the new leader starts from.
        deadline = time.monotonic() + 30
        while not view_has_the_pods():
            assert time.monotonic() < deadline, "the follower never loaded a full view"
            time.sleep(0.1)
        victim = leader_pid(log)
        os.kill(victim, signal.SIGKILL)
        wait_log(log, "leading this node's helpers now")
        # A pod created after the kill: only a working leader can find it.
        emulator.world.apply(make_pod("shop", "late-0", {"app": "late-0"}))
        late = container_log(tmp_path, "shop", "late-0", "app")
        time.sleep(1.0)
        writer.stop.set()
        writer.join()
        write_lines(late, [docker_line("seq late late-0")])
        total = writer.n + 1
        recs = rs.wait_records(total, timeout=60)
        time.sleep(0.5)
        recs = rs.records()
        pids = helpers_of(cfg)
    text = log.read_text()
    assert victim not in pids
    assert "leading this node's helpers now" in text
    seqs = sorted(r["log"].split()[1] for r in recs if r["log"].startswith("seq "))
    assert seqs == sorted([*(str(i) for i in range(writer.n)), "late"]), \
        "every line exactly once"
    # rsyslog passes on, without kubemeta's fields, the records its worker had
    # dequeued for the helper that died (the worker thread ends with it): one batch,
    # a run of consecutive records in each file.
    for name in {r["metadata"]["filename"] for r in recs}:
        mine = sorted((int(r["metadata"]["fileoffset"]), "kubernetes" in r) for r in recs
                      if r["metadata"]["filename"] == name)
        passed_on = [i for i, (_, enriched) in enumerate(mine) if not enriched]
        assert passed_on == list(range(passed_on[0], passed_on[0] + len(passed_on))) \
            if passed_on else True, (name, passed_on)
    # kubemeta itself answers with the metadata it has, but for a line or two
    # asked of a leader still taking over.
    unlabelled = [r for r in recs if "kubernetes" in r and "labels" not in r["kubernetes"]]
    assert len(unlabelled) <= 2, unlabelled
    late_rec = next(r for r in recs if r["log"].startswith("seq late"))
    assert late_rec["kubernetes"]["labels"] == {"app": "late-0"}


def count_helpers_over_idle_spells(tmp: Path, emu: ApiEmulator, token_file: Path,
                                   shutdown: str) -> list[int]:
    pods = cluster(emu)
    cfg = kubemeta_config(tmp, emu, token_file, log_level="info")
    files = [container_log(tmp, ns, name, "app") for ns, name in pods]
    counts = []
    with Rsyslog(tmp, snippet(tmp, cfg, 2, shutdown)) as rs:
        n = 0
        for _ in range(3):
            for k in range(100):
                for f in files:
                    write_lines(f, [docker_line(f"burst {k}")])
                    n += 1
            rs.wait_records(n, timeout=60)
            time.sleep(2.5)  # idle, longer than the shutdown timeout under test
            counts.append(len(helpers_of(cfg)))
    return counts


def test_idle_worker_threads_orphan_no_helper(tmp_path: Path, emulator: ApiEmulator,
                                              token_file: Path) -> None:
    # What the shipped setting prevents: workers idling out after 1 s orphan
    # their helpers, which pile up (rsyslog 8.2302).
    (tmp_path / "idle").mkdir()
    control = count_helpers_over_idle_spells(tmp_path / "idle", emulator, token_file, "1000")
    (tmp_path / "never").mkdir()
    shipped = count_helpers_over_idle_spells(tmp_path / "never", emulator, token_file, "-1")
    assert max(control) > 2, f"the control did not orphan helpers: {control}"
    assert max(shipped) <= 2, shipped


def prometheus_value(path: Path, metric: str) -> float | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(metric + " "):
            return float(line.split()[1])
    return None


def test_the_node_counts_every_helpers_lines_and_never_fewer(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    pods = cluster(emulator)
    prom, stats = tmp_path / "kubemeta.prom", tmp_path / "stats.json"
    cfg = kubemeta_config(tmp_path, emulator, token_file, node_name="node-1",
                          watch_start_jitter=0, prometheus_file=str(prom),
                          stats_file=str(stats), stats_interval=0.2)
    files = [container_log(tmp_path, ns, name, "app") for ns, name in pods]
    seen: list[float] = []

    def node_count_reaches(n: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            value = prometheus_value(prom, "kubemeta_recordseen_total")
            if value is not None and (not seen or value != seen[-1]):
                seen.append(value)
            if value == n:
                return
            assert time.monotonic() < deadline, f"the node counted {seen[-3:]}, not {n}"
            time.sleep(0.05)

    with Rsyslog(tmp_path, snippet(tmp_path, cfg, 2)) as rs:
        for k in range(150):
            for f in files:
                write_lines(f, [docker_line(f"{f.name.split('_')[0]} {k}")])
        first = len(files) * 150
        rs.wait_records(first, timeout=120)
        node_count_reaches(first)
        # Each helper's own line: the node's figure is their sum, not the leader's.
        own: dict[str, int] = {}
        for line in stats.read_text().splitlines():
            rec = json.loads(line)
            if rec["name"].startswith("kubemeta("):
                own[rec["name"]] = rec["recordseen"]
        assert len(own) == 2 and sum(own.values()) == first and min(own.values()) > 0, own
        log = tmp_path / "kubemeta.log"
        os.kill(leader_pid(log), signal.SIGKILL)
        wait_log(log, "leading this node's helpers now")
        for f in files:
            write_lines(f, [docker_line(f"{f.name.split('_')[0]} after")])
        rs.wait_records(first + len(files), timeout=60)
        node_count_reaches(first + len(files))
    assert seen == sorted(seen), f"the node's count went back: {seen}"
