"""omprog mode through a real rsyslogd with the shipped 50-kubemeta-omprog.conf:
confirmed delivery through kubemeta's sink and back into rsyslog."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    OMPROG,
    LineConsumer,
    Rsyslog,
    container_log,
    cri_line,
    docker_line,
    enriched_socket,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)
from omprogkill import SINKS, kill_run

T = "2026-11-21T10:00:00.000000001Z"


def omprog_pipeline(tmp: Path, emu: ApiEmulator, token_file: Path, sink: str | None = None
                    ) -> tuple[Rsyslog, Path]:
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    emu.world.apply(make_pod("shop", "web-1", {"app": "web-1"}))
    emu.world.apply(make_pod("shop", "old-1", {"app": "old-1"}))
    cfg = kubemeta_config(tmp, emu, token_file, sink=sink or f"unix:{enriched_socket(tmp)}",
                          sink_timeout=2.0, sink_retry_initial=0.1, sink_retry_max=0.5)
    rs = Rsyslog(tmp, shipped_snippet(tmp, cfg, name=OMPROG))
    path = container_log(tmp, "shop", "web-1", "app")
    path.touch()
    return rs, path


class Stream(threading.Thread):
    """Appends numbered CRI lines to a file until stopped."""

    def __init__(self, path: Path, period: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.path, self.period, self.n = path, period, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            write_lines(self.path, [cri_line(f"seq {self.n}", "stdout", T)])
            self.n += 1
            time.sleep(self.period)


def seqs(recs: list[dict[str, Any]]) -> Counter[int]:
    return Counter(int(r["log"].split()[1]) for r in recs if r.get("log", "").startswith("seq "))


def test_both_runtimes_enriched_through_the_sink(tmp_path: Path, emulator: ApiEmulator,
                                                 token_file: Path) -> None:
    rs, cri_file = omprog_pipeline(tmp_path, emulator, token_file)
    write_lines(cri_file, [cri_line("big " + "x" * 40000, "stderr", T), cri_line("small")])
    docker_file = container_log(tmp_path, "shop", "old-1", "app")
    write_lines(docker_file, [docker_line("from docker")])
    with rs:
        recs = rs.wait_records(3)
        time.sleep(0.5)
        recs = rs.records()
        assert rs.helpers("omprog")
    assert len(recs) == 3
    by_log = {r["log"]: r for r in recs}
    assert by_log["big " + "x" * 40000 + "\n"]["stream"] == "stderr"
    for r in recs:
        assert r["kubernetes"]["namespace_labels"]["team"] == "shop"
        assert r["kubernetes"]["labels"]["app"] in ("web-1", "old-1")
        assert r["metadata"]["filename"] in (str(cri_file), str(docker_file))
    assert by_log["from docker\n"]["kubernetes"]["pod_name"] == "old-1"


@pytest.mark.parametrize("sink", SINKS)
def test_kubemeta_killed_under_load_loses_no_line(tmp_path: Path, emulator: ApiEmulator,
                                                  token_file: Path, sink: str) -> None:
    """400 lines/s, kubemeta SIGKILLed 4 times: rsyslog resends the record in flight,
    and every record kubemeta answered is in the sink already. At least once:
    the duplicates are counted and bounded by what was in flight at each kill."""
    run = kill_run(tmp_path, emulator, token_file, sink)
    print(f"\n{sink}: {run.written} lines, killed {run.kills} times, "
          f"{len(run.lost)} lost, {run.duplicates} duplicates")
    assert run.kills == 4
    assert run.lost == [], f"lost {run.lost}"
    assert run.duplicates <= run.kills * 128  # at most a batch of the action queue each


def test_consumer_socket_closed_and_reopened(tmp_path: Path, emulator: ApiEmulator,
                                            token_file: Path) -> None:
    import json

    sock = tmp_path / "consumer.sock"
    consumer = LineConsumer(str(sock))
    rs, path = omprog_pipeline(tmp_path, emulator, token_file, sink=f"unix:{sock}")
    stream = Stream(path)
    with rs:
        stream.start()
        for _ in range(3):
            seen = len(consumer.lines)
            deadline = time.monotonic() + 60
            while len(consumer.lines) < seen + 100:
                assert time.monotonic() < deadline, rs.stderr.read_text()[-2000:]
                time.sleep(0.05)
            consumer.close()
            time.sleep(1.5)   # records queue up in rsyslog meanwhile
            consumer.open()
        stream.stop.set()
        stream.join()
        deadline = time.monotonic() + 120
        while True:
            with consumer.lock:
                got = Counter(int(json.loads(x)["log"].split()[1]) for x in consumer.lines)
            if set(got) >= set(range(stream.n)) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        log = (tmp_path / "kubemeta.log").read_text()
        pids = rs.helpers("omprog")
    assert set(got) == set(range(stream.n)), f"lost {sorted(set(range(stream.n)) - set(got))}"
    dups = sum(n - 1 for n in got.values())
    print(f"\nconsumer closed 3 times; {stream.n} lines; {dups} duplicates")
    assert log.count("unavailable") >= 1 and log.count("recovered after") >= 1
    assert len(pids) == 1
