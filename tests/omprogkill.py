"""omprog mode under load with kubemeta SIGKILLed: the shipped 50-kubemeta-omprog.conf
in a real rsyslogd, numbered lines at a steady rate, and kills spread over the
run. Counts what reached the sink: every line, how many twice. Shared by the
end-to-end test (one run per sink kind) and the benchmark (ten in a row)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    OMPROG,
    LineConsumer,
    Rsyslog,
    container_log,
    cri_line,
    enriched_socket,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

SINKS = ("unix", "file", "tcp")
T = "2026-11-21T10:00:00.000000001Z"
END = -1  # the seq of the last line, written after the others


@dataclass
class KillRun:
    sink: str
    written: int       # numbered lines, the end marker not counted
    kills: int
    got: Counter[int]  # seq -> times the sink received it

    @property
    def lost(self) -> list[int]:
        return sorted(set(range(self.written)) - set(self.got))

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for seq, n in self.got.items() if seq != END)


class _Stream(threading.Thread):
    """Appends numbered CRI lines at ``rate`` per second until stopped, then the end
    marker. Pacing by sleep is the load's shape here, not a synchronisation."""

    def __init__(self, path: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.path, self.period, self.n = path, 1.0 / rate, 0
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            write_lines(self.path, [cri_line(f"seq {self.n}", "stdout", T)])
            self.n += 1
            time.sleep(max(0.0, start + self.n * self.period - time.monotonic()))
        write_lines(self.path, [cri_line(f"seq {END}", "stdout", T)])


def _seq(text: str) -> int | None:
    parts = text.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] == "seq" else None


def _until(cond: Callable[[], bool], timeout: float, what: str, rs: Rsyslog) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s; rsyslogd said: "
                                 f"{rs.stderr.read_text()[-2000:]}")
        time.sleep(0.05)


def kill_run(tmp: Path, emu: ApiEmulator, token_file: Path, sink: str, rate: float = 400.0,
             kills: int = 4, lines_between: int = 600) -> KillRun:
    """Lines at ``rate`` through omprog mode into ``sink`` (unix: the shipped setup,
    back into rsyslog; file; tcp: a consumer of the test's), kubemeta SIGKILLed
    ``kills`` times, each after another ``lines_between`` lines reached the sink."""
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    emu.world.apply(make_pod("shop", "web-1", {"app": "web-1"}))
    consumer = LineConsumer(("127.0.0.1", 0)) if sink == "tcp" else None
    out_file = tmp / "enriched.jsonl"
    target = {"unix": f"unix:{enriched_socket(tmp)}", "file": f"file:{out_file}",
              "tcp": f"tcp:127.0.0.1:{consumer.address[1] if consumer else 0}"}[sink]
    cfg = kubemeta_config(tmp, emu, token_file, sink=target, log_level="info",
                          sink_timeout=2.0, sink_retry_initial=0.1, sink_retry_max=0.5)
    rs = Rsyslog(tmp, shipped_snippet(tmp, cfg, name=OMPROG))
    path = container_log(tmp, "shop", "web-1", "app")
    path.touch()

    def received() -> list[str]:
        if sink == "unix":
            return [str(r.get("log", "")) for r in rs.records()]
        if sink == "file":
            text = out_file.read_text() if out_file.exists() else ""
            return [str(json.loads(x).get("log", "")) for x in text.splitlines()
                    if x.endswith("}")]  # a line being written is read next time
        assert consumer is not None
        with consumer.lock:
            return [str(json.loads(x).get("log", "")) for x in consumer.lines]

    def counted() -> Counter[int]:
        return Counter(s for s in (_seq(x) for x in received()) if s is not None)

    stream = _Stream(path, rate)
    killed = 0
    try:
        with rs:
            stream.start()
            for _ in range(kills):
                seen = len(received())
                _until(lambda s=seen: len(received()) >= s + lines_between, 120,  # type: ignore[misc]
                       "lines reaching the sink", rs)
                _until(lambda: bool(rs.helpers("omprog")), 60, "rsyslog restarting kubemeta", rs)
                for pid in rs.helpers("omprog"):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            stream.stop.set()
            stream.join()
            # rsyslog's queue is in order, and resends a batch before going on: the
            # end marker comes after every line that is coming at all.
            _until(lambda: END in counted(), 180, "the end marker", rs)
            got = counted()
    finally:
        if consumer is not None:
            consumer.close()
    return KillRun(sink, stream.n, killed, got)
