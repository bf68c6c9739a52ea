"""An outage scenario through a real rsyslogd: steady writers, a timeline of API
faults, and the measurements the outage tests assert on."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    DOCKER,
    TABLE_DOCKER,
    Daemon,
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
)

KNOWN = [("shop", "web-1", "app"), ("shop", "web-2", "app"), ("data", "db-0", "postgres")]
NEW = ("shop", "web-new", "app")
DEADLINE = 0.25


class Writer(threading.Thread):
    """Appends a numbered line to each file every ``period`` seconds."""

    def __init__(self, files: dict[str, Path], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.period = period
        self.written: dict[str, int] = dict.fromkeys(files, 0)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def add(self, key: str, path: Path) -> None:
        with self.lock:
            self.files[key] = path
            self.written[key] = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                items = list(self.files.items())
            for key, path in items:
                n = self.written[key]
                with open(path, "a", encoding="utf-8") as f:
                    f.write(docker_line(f"{key} seq {n}"))
                self.written[key] = n + 1
            time.sleep(self.period)


class Tail(threading.Thread):
    """Reads rsyslog's output as it grows and notes when each record arrived."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        pos, buf = 0, b""
        while not self.stop.is_set():
            if self.path.exists():
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                pos += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                now = time.monotonic()
                self.records.extend((now, json.loads(x)) for x in lines if x.strip())
            time.sleep(0.02)


@dataclass
class Result:
    records: list[tuple[float, dict[str, Any]]]
    written: dict[str, int]
    recovered_at: float
    pids_before: list[int]
    pids_after: list[int]
    log: str
    stats: list[dict[str, Any]] = field(default_factory=list)

    def lines(self, key: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, r) for t, r in self.records if r["log"].startswith(f"{key} seq ")]

    def max_gap(self) -> float:
        times = [t for t, _ in self.records]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def key_of(ns: str, pod: str, cont: str) -> str:
    return f"{ns}/{pod}/{cont}"


def run(tmp: Path, emu: ApiEmulator, token_file: Path, timeline: list[tuple[str, float]],
        start_phase: str = "ok", during: Any = None, table: bool = False,
        **cfg_extra: Any) -> Result:
    """``table``: table mode, its daemon started first; the pids are the daemon's."""
    for ns in ("shop", "data"):
        emu.world.apply(make_namespace(ns, {"team": ns}))
    for ns, pod, cont in KNOWN:
        emu.world.apply(make_pod(ns, pod, {"app": pod}, containers=(cont,)))
    files = {key_of(*k): container_log(tmp, *k) for k in KNOWN}
    for p in files.values():
        p.touch()
    settings = {"lookup_deadline": DEADLINE, "api_read_timeout": 2.0, "api_connect_timeout": 1.0,
                "retry_initial": 0.5, "retry_max": 2.0, "retry_jitter": 0.2,
                "stats_file": str(tmp / "stats.json"), "stats_interval": 1.0}
    if table:
        settings.update(node_name="node-1", watch_start_jitter=0)
    settings.update(cfg_extra)
    cfg = kubemeta_config(tmp, emu, token_file, **settings)
    daemon = Daemon(cfg).start() if table else None
    try:
        return _run(tmp, emu, cfg, timeline, start_phase, during, files, daemon)
    finally:
        if daemon is not None and daemon.proc is not None:
            daemon.stop()


def _run(tmp: Path, emu: ApiEmulator, cfg: Path, timeline: list[tuple[str, float]],
         start_phase: str, during: Any, files: dict[str, Path], daemon: Daemon | None
         ) -> Result:
    emu.set_phase(start_phase)
    rs = Rsyslog(tmp, shipped_snippet(tmp, cfg, name=TABLE_DOCKER if daemon else DOCKER),
                 "rsyslog")
    writer = Writer(files)
    tail = Tail(rs.out)

    def pids() -> list[int]:
        if daemon is None:
            return rs.helpers()
        return [daemon.proc.pid] if daemon.proc and daemon.proc.poll() is None else []

    with rs:
        tail.start()
        writer.start()
        if start_phase == "ok":
            _until(lambda: all(_labelled(tail, k) for k in files), 30, "warm-up")
        _until(pids, 30, "rsyslog to start kubemeta")
        pids_before = pids()
        # The outage begins; then a pod is created: the API knows it, kubemeta cannot ask.
        t = emu.play([*timeline, ("ok", 0)])
        _until(lambda: timeline[0][0] in emu.phase_started, 10, "the outage")
        emu.world.apply(make_pod(NEW[0], NEW[1], {"app": NEW[1]}, containers=(NEW[2],)))
        writer.add(key_of(*NEW), container_log(tmp, *NEW))
        if during is not None:
            during()
        t.join()
        recovered_at = emu.phase_started["ok"] if "ok" in emu.phase_started else time.monotonic()
        _until(lambda: _labelled(tail, key_of(*NEW), after=recovered_at), 30, "recovery")
        # Then more of the new pod's lines, to see that its labels stay.
        _until(lambda: len(since_labelled(tail.records, recovered_at)) >= 20, 30,
               "the new pod's lines after its labels came")
        writer.stop.set()
        writer.join()
        total = sum(writer.written.values())
        _until(lambda: len(tail.records) >= total, 60, "drain")
        pids_after = pids()
        tail.stop.set()
        tail.join()
    stats = []
    if (tmp / "stats.json").exists():
        stats = [json.loads(x) for x in (tmp / "stats.json").read_text().splitlines()]
    return Result(tail.records, dict(writer.written), recovered_at, pids_before, pids_after,
                  (tmp / "kubemeta.log").read_text(), stats)


def since_labelled(records: list[tuple[float, dict[str, Any]]], recovered_at: float,
                   key: str | None = None) -> list[dict[str, Any]]:
    """A pod's lines (the new pod's by default) from its first labelled one after
    the recovery on."""
    key = key or key_of(*NEW)
    mine = [r for t, r in list(records) if t >= recovered_at and r["log"].startswith(f"{key} seq ")]
    first = next((i for i, r in enumerate(mine) if r.get("kubernetes", {}).get("labels")), None)
    return [] if first is None else mine[first:]


def _labelled(tail: Tail, key: str, after: float = 0.0) -> bool:
    return any(r.get("kubernetes", {}).get("labels") and r["log"].startswith(f"{key} seq ")
               for t, r in list(tail.records) if t >= after)


def _until(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def check(res: Result, known_labelled_throughout: bool = True) -> None:
    """The promises, asserted."""
    # Every line written comes out exactly once.
    for key, n in res.written.items():
        seqs = sorted(int(r["log"].split(" seq ")[1]) for _, r in res.lines(key))
        assert seqs == list(range(n)), f"{key}: {len(seqs)} records for {n} lines"
    # rsyslog never stalled longer than the deadline plus a second.
    assert res.max_gap() <= DEADLINE + 1.0, f"output stalled {res.max_gap():.2f}s"
    # Known pods keep their labels throughout.
    if known_labelled_throughout:
        for k in KNOWN:
            for _, r in res.lines(key_of(*k)):
                assert r["kubernetes"]["labels"] == {"app": k[1]}, r
    # The pod born during the outage gets full metadata after the recovery (run
    # waits 30 s at most for it: no fixed window a loaded machine could miss),
    # and keeps it.
    late = since_labelled(res.records, res.recovered_at)
    assert late, "no labelled lines of the new pod after recovery"
    for r in late:
        assert r["kubernetes"]["labels"] == {"app": NEW[1]}, r
        assert r["kubernetes"]["namespace_labels"]["team"] == "shop"
    # The same helper process all along: kubemeta never exited.
    assert len(res.pids_before) == 1 and res.pids_after == res.pids_before
