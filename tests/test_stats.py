from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from kubemeta import __version__
from kubemeta.shell import nodecounters
from kubemeta.shell.stats import StatsWriter, impstats_line, prometheus_text, snapshot

from fakes import store_with_traffic


def test_snapshot_has_mmkubernetes_names_and_ours() -> None:
    store, clock = store_with_traffic()
    clock.advance(5)
    v = snapshot(store, clock())
    for name in ("recordseen", "namespacemetadatasuccess", "namespacemetadatanotfound",
                 "namespacemetadatabusy", "namespacemetadataerror", "podmetadatasuccess",
                 "podmetadatanotfound", "podmetadatabusy", "podmetadataerror",
                 "podcachenumentries", "namespacecachenumentries", "podcachehits",
                 "podcachemisses", "namespacecachehits", "namespacecachemisses",
                 "linesstale", "linesfilenameonly", "breakerstate",
                 "secondssincelastsuccess", "lookupspending", "apirequests"):
        assert name in v, name
    assert v["podmetadatasuccess"] == 1 and v["podmetadatanotfound"] == 1
    assert v["apirequests"] == {"get.200": 2, "get.404": 1}
    assert v["secondssincelastsuccess"] == 5.0 and v["breakerstate"] == 0


def test_impstats_line_is_flat_json() -> None:
    line = impstats_line({"recordseen": 3, "apirequests": {"get.200": 2, "watch.403": 1}},
                         "kubemeta(x)")
    assert json.loads(line) == {"name": "kubemeta(x)", "origin": "kubemeta", "recordseen": 3,
                                "apirequests.get.200": 2, "apirequests.watch.403": 1}


def test_prometheus_text_format() -> None:
    text = prometheus_text({"recordseen": 3, "breakerstate": 1, "apirequests": {"list.403": 4},
                            "watchup": {"pods": 1}}, written=1700000000.5)
    assert "# TYPE kubemeta_recordseen_total counter\nkubemeta_recordseen_total 3\n" in text
    assert "# TYPE kubemeta_breakerstate gauge\nkubemeta_breakerstate 1\n" in text
    assert 'kubemeta_apirequests_total{verb="list",status="403"} 4\n' in text
    assert 'kubemeta_watchup{resource="pods"} 1\n' in text
    assert f'kubemeta_build_info{{version="{__version__}",python="' in text
    assert "kubemeta_last_write_timestamp_seconds 1700000000.500\n" in text
    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == 6 and all(len(h.split(" ", 3)[3]) > 10 for h in helps)


def test_writer_appends_json_and_replaces_prom_file(tmp_path: Path) -> None:
    store, _ = store_with_traffic()
    w = StatsWriter(store, "kubemeta(x)", 60, str(tmp_path / "stats.json"),
                    str(tmp_path / "kubemeta.prom"))
    w.write()
    w.write()
    lines = [json.loads(line) for line in (tmp_path / "stats.json").read_text().splitlines()]
    # Its own line, and the node's (a helper alone is its node), named as mmkubernetes's.
    assert [line["name"] for line in lines] == ["kubemeta(x)", "mmkubernetes()"] * 2
    assert lines[0]["podmetadatasuccess"] == 1
    assert "kubemeta_podmetadatasuccess_total 1" in (tmp_path / "kubemeta.prom").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubemeta.prom", "stats.json"]
    assert (tmp_path / "kubemeta.prom").stat().st_mode & 0o777 == 0o644  # node-exporter reads it
    assert (tmp_path / "stats.json").stat().st_mode & 0o777 == 0o640


def test_links_planted_by_another_user_are_not_written_through(tmp_path: Path) -> None:
    """The textfile directory may be writable by others: links at the old fixed
    temporary name, at the Prometheus file and at the stats file are not followed."""
    store, _ = store_with_traffic()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    prom, stats_file = tmp_path / "kubemeta.prom", tmp_path / "stats.json"
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # what the fixed name was
        (tmp_path / f"kubemeta.prom.{pid}.tmp").symlink_to(victim)
    prom.symlink_to(victim)
    stats_file.symlink_to(victim)
    with caplog_of("kubemeta.shell.stats") as records:
        StatsWriter(store, "x", 60, str(stats_file), str(prom)).write()
    assert victim.read_text() == "precious\n"
    assert not prom.is_symlink() and "kubemeta_recordseen" in prom.read_text()
    assert stats_file.is_symlink()  # refused, not followed, and said so:
    assert [r.getMessage() for r in records] == [
        f"cannot write counters to {stats_file}: it is a symbolic link, which kubemeta does "
        "not write through (another user may have planted it)"]


def test_unwritable_files_do_not_raise(tmp_path: Path) -> None:
    store, _ = store_with_traffic()
    StatsWriter(store, "x", 60, str(tmp_path / "no" / "dir" / "s.json"), None).write()


@contextlib.contextmanager
def caplog_of(name: str) -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_counts_add_up_key_by_key() -> None:
    total = nodecounters.add({"recordseen": 2, "apirequests": {"200": 1}},
                             {"recordseen": 3, "apirequests": {"200": 2, "403": 1},
                              "flag": True, "name": "x"})
    assert total == {"recordseen": 5, "apirequests": {"200": 3, "403": 1}}


def test_a_helpers_counts_outlive_it(tmp_path: Path) -> None:
    leader = nodecounters.NodeCounters(str(tmp_path), "g1")
    # Another helper of the group, alive (this test's parent process stands for it)...
    parent = os.getppid()
    alive = tmp_path / f"counters-g1-{parent}-{nodecounters._started(parent)}.json"
    alive.write_text('{"recordseen": 10, "apirequests": {"200": 1}}')
    # ...one that is gone, and one of another group, never counted here.
    gone = tmp_path / "counters-g1-999999999-12345.json"
    gone.write_text('{"recordseen": 100}')
    (tmp_path / "counters-g2-999999998-1.json").write_text('{"recordseen": 1000}')
    first = leader.totals({"recordseen": 1})
    assert first == {"recordseen": 111, "apirequests": {"200": 1}}
    assert not gone.exists() and alive.exists()  # retired: added once, kept in the sum
    assert leader.totals({"recordseen": 2})["recordseen"] == 112
    # The other helper takes the lead: it counts the first one's published counts.
    leader.publish({"recordseen": 3})
    other = nodecounters.NodeCounters(str(tmp_path), "g1", pid=parent)
    assert other.totals({"recordseen": 10})["recordseen"] == 113
    assert (Path(leader.path).stat().st_mode & 0o777) == 0o600
