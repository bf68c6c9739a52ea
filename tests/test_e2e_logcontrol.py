"""log_control through a real rsyslogd with the shipped snippets: a pod's
annotations drop its lines, or one container's, or sample them, and take effect
with the watch event that brings them, without a restart.

Exact counts: the shipped queue runs here with one worker, which takes each
record through the whole ruleset before the next (rsyslog 8). Once rsyslog's own
counters (impstats) say its mmjsonparse, the ruleset's first action, has had a
sentinel line written after the lines under test, those have been dealt with,
kept or dropped, and the annotation may change again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    DOCKER,
    OMPROG,
    TABLE_DOCKER,
    Daemon,
    Rsyslog,
    container_log,
    docker_line,
    enriched_socket,
    kubemeta_config,
    shipped_snippet,
    wait_log,
    wait_table,
    write_lines,
)

LOG = "kubemeta.log"


class Node:
    def __init__(self, tmp: Path, emu: ApiEmulator, rs: Rsyslog, passes: int) -> None:
        self.tmp, self.emu, self.rs = tmp, emu, rs
        self.passes = passes  # mmjsonparse actions a line goes through
        self.changes = 0
        self.written = 0
        self.dirty: set[str] = set()  # containers written to since the last settle

    def annotate(self, annotations: dict[str, str], wait: bool = True) -> None:
        """Once rsyslog has dealt with every line written so far, noisy's
        annotations become ``annotations``; until the helper applied it."""
        self.settle()
        self.emu.world.apply(make_pod("shop", "noisy", {"app": "noisy"}, annotations,
                                      containers=("app", "sidecar")))
        self.changes += 1
        if wait:
            wait_log(self.tmp / LOG, "pods on node node-1: MODIFIED shop/noisy applied",
                     self.changes)

    def write(self, container: str, prefix: str, n: int) -> list[str]:
        texts = [f"{prefix} {i}" for i in range(n)]
        write_lines(container_log(self.tmp, "shop", "noisy", container),
                    [docker_line(t) for t in texts])
        self.written += n
        self.dirty.add(container)
        return texts

    def settle(self) -> None:
        """Until rsyslog has dealt with every line written so far: a sentinel line
        (whose own fate is not asserted) after them in each file written to has
        reached mmjsonparse, as many times as the setup parses a line (omprog's
        twice, the second time just before the log_control block)."""
        for container in sorted(self.dirty):
            self.write(container, "sentinel", 1)
        self.dirty.clear()
        end = time.monotonic() + 60
        while parsed(self.tmp) < self.passes * self.written:
            assert time.monotonic() < end, f"{parsed(self.tmp)} of {self.written} parsed"
            time.sleep(0.1)

    def until_rsyslog_keeps(self, kept: bool) -> None:
        """Table mode: until rsyslog's loaded table (it reloads in the background,
        after the file) keeps, or drops, noisy's app lines: probe lines, each
        dealt with (settle) before its fate is read, until one is ``kept``."""
        end = time.monotonic() + 60
        k = 0
        while True:
            probe = self.write("app", f"probe {k}", 1)[0]
            self.settle()
            if any(r["log"] == probe + "\n" for r in self.rs.records()) is kept:
                return
            assert time.monotonic() < end, "rsyslog's table never changed"
            k += 1

    def out(self, *texts: str) -> list[dict[str, Any]]:
        """The records of these texts, once the last one is out."""
        recs = self.rs.wait_records(0, until=lambda rs: any(
            r["log"] == texts[-1] + "\n" for r in rs))
        return [r for r in recs if r["log"].rstrip("\n") in texts]


def parsed(tmp: Path) -> int:
    """How many records rsyslog's mmjsonparse actions have had (impstats)."""
    stats = tmp / "impstats.json"
    last: dict[str, int] = {}
    for line in stats.read_text().splitlines() if stats.exists() else []:
        if ": {" not in line:
            continue  # still being written
        try:  # each line: the date, ": ", the counters
            s = json.loads(line.split(": ", 1)[1])
        except ValueError:
            continue
        if str(s.get("name", "")).endswith("mmjsonparse"):
            last[s["name"]] = int(s.get("processed", 0))
    return sum(last.values())


IMPSTATS = ('module(load="impstats" interval="1" format="json" log.syslog="off" '
            'resetCounters="off" log.file="{file}")\n')


@contextmanager
def node(tmp: Path, emu: ApiEmulator, token_file: Path, table: bool = False,
         snippet: str = DOCKER, **settings: Any) -> Iterator[Node]:
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    emu.world.apply(make_pod("shop", "noisy", {"app": "noisy"}, containers=("app", "sidecar")))
    cfg = kubemeta_config(tmp, emu, token_file, node_name="node-1", watch_start_jitter=0,
                          log_control=True, **settings)
    text = shipped_snippet(tmp, cfg, name=TABLE_DOCKER if table else snippet)
    if snippet != OMPROG:  # omprog's queues have one worker already
        assert 'queue.workerThreads="2"' in text
        text = text.replace('queue.workerThreads="2"', 'queue.workerThreads="1"')
    text = IMPSTATS.format(file=tmp / "impstats.json") + text
    daemon = Daemon(cfg).start() if table else None
    try:
        with Rsyslog(tmp, text) as rs:
            n = Node(tmp, emu, rs, 2 if snippet == OMPROG and not table else 1)
            start = n.out(*n.write("app", "start", 1))
            assert start[0]["kubernetes"]["labels"] == {"app": "noisy"}, start
            yield n
    finally:
        if daemon is not None:
            daemon.stop()


def logs(recs: list[dict[str, Any]]) -> list[str]:
    return [r["log"].rstrip("\n") for r in recs]


def test_an_exclude_annotation_stops_a_pods_lines_and_its_removal_resumes_them(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with node(tmp_path, emulator, token_file) as n:
        before = n.write("app", "before", 10)
        n.annotate({"kubemeta.io/exclude": "true"})
        dropped = n.write("app", "excluded", 25)
        n.annotate({"kubemeta.io/exclude": "false"})
        after = n.write("app", "after", 10)
        recs = n.out(*before, *dropped, *after)
    assert logs(recs) == before + after  # exactly: none of the 25, all of the 20
    assert all(r["kubernetes"]["labels"] == {"app": "noisy"} for r in recs)
    assert all("kubemeta_exclude" not in r["kubernetes"] for r in recs)


def test_one_container_excluded_and_fluent_bits_annotation_when_asked(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with node(tmp_path, emulator, token_file, log_control_fluentbit=True) as n:
        n.annotate({"kubemeta.io/exclude-sidecar": "true"})
        kept = n.write("app", "app kept", 10)
        dropped = n.write("sidecar", "sidecar dropped", 10)
        n.annotate({"fluentbit.io/exclude": "True"})
        dropped += n.write("app", "app dropped", 10)
        n.annotate({})
        later = n.write("sidecar", "sidecar kept", 5)
        kept_app = n.write("app", "app kept again", 5)
        recs = n.out(*kept, *dropped, *later) + n.out(*kept_app)
    assert sorted(logs(recs)) == sorted(kept + later + kept_app)


def test_a_sample_rate_keeps_about_that_share_and_a_bad_one_keeps_all(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with node(tmp_path, emulator, token_file) as n:
        n.annotate({"kubemeta.io/sample-rate": "0.25"})
        sampled = n.write("app", "sampled", 400)
        n.annotate({"kubemeta.io/sample-rate": "lots"})
        end = n.write("app", "all", 20)
        recs = n.out(*sampled, *end)
    kept = [r for r in recs if r["log"].startswith("sampled")]
    assert 40 <= len(kept) <= 160, len(kept)  # a quarter of 400, 6 standard deviations wide
    assert logs(recs)[-20:] == end
    assert all("kubemeta_sample" not in r["kubernetes"] for r in recs)
    text = (tmp_path / LOG).read_text()
    assert text.count("annotation kubemeta.io/sample-rate: 'lots' is not a number from 0 "
                      "to 1") == 1


def test_table_mode_drops_an_excluded_pods_lines_on_a_table_hit(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with node(tmp_path, emulator, token_file, table=True) as n:
        app = str(container_log(tmp_path, "shop", "noisy", "app"))

        def marked(flag: bool) -> Any:
            return lambda t: app in t and (
                "kubemeta_exclude" in t[app]["kubernetes"]) is flag

        n.annotate({"kubemeta.io/exclude": "true"}, wait=False)
        wait_table(tmp_path, marked(True))
        n.until_rsyslog_keeps(False)
        dropped = n.write("app", "excluded", 10)
        n.annotate({}, wait=False)
        wait_table(tmp_path, marked(False))
        n.until_rsyslog_keeps(True)
        after = n.write("app", "after", 10)
        recs = n.out(*dropped, *after)
    assert logs(recs) == after
    assert all(r["kubernetes"]["labels"] == {"app": "noisy"} for r in recs)


def test_omprog_mode_drops_an_excluded_pods_lines_on_their_way_back(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with node(tmp_path, emulator, token_file, snippet=OMPROG,
              sink=f"unix:{enriched_socket(tmp_path)}") as n:
        n.annotate({"kubemeta.io/exclude": "true"})
        dropped = n.write("app", "excluded", 10)
        n.annotate({})
        after = n.write("app", "after", 10)
        recs = n.out(*dropped, *after)
    assert logs(recs) == after
