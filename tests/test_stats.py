from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from kubemeta.cache.store import MetadataStore
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.shell.stats import StatsWriter, impstats_line, prometheus_text, snapshot

from fakes import FakeClock, FakeFetcher, make_store

POD = PodMeta("uid-1", {"app": "web"}, None, "node-1")
NS = NamespaceMeta("ns-uid", None, None, None)


def store_with_traffic() -> tuple[MetadataStore, FakeClock]:
    clock = FakeClock()
    store = make_store(FakeFetcher({("shop", "web-1"): POD}, {"shop": NS}), clock, workers=1)
    store.lookup(PodRef("shop", "web-1", "app", None, None), clock() + 10)
    store.lookup(PodRef("shop", "gone", "app", None, None), clock() + 10)
    assert store.wait_idle(10)
    return store, clock


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
    assert v["apirequests"] == {"200": 2, "404": 1}
    assert v["secondssincelastsuccess"] == 5.0 and v["breakerstate"] == 0


def test_impstats_line_is_flat_json() -> None:
    line = impstats_line({"recordseen": 3, "apirequests": {"200": 2, "403": 1}}, "kubemeta(x)")
    assert json.loads(line) == {"name": "kubemeta(x)", "origin": "kubemeta", "recordseen": 3,
                                "apirequests.200": 2, "apirequests.403": 1}


def test_prometheus_text_format() -> None:
    text = prometheus_text({"recordseen": 3, "breakerstate": 1, "apirequests": {"403": 4}})
    assert "# TYPE kubemeta_recordseen counter\nkubemeta_recordseen 3\n" in text
    assert "# TYPE kubemeta_breakerstate gauge\nkubemeta_breakerstate 1\n" in text
    assert 'kubemeta_apirequests{status="403"} 4\n' in text


def test_writer_appends_json_and_replaces_prom_file(tmp_path: Path) -> None:
    store, _ = store_with_traffic()
    w = StatsWriter(store, "kubemeta(x)", 60, str(tmp_path / "stats.json"),
                    str(tmp_path / "kubemeta.prom"))
    w.write()
    w.write()
    lines = (tmp_path / "stats.json").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["podmetadatasuccess"] == 1
    assert "kubemeta_podmetadatasuccess 1" in (tmp_path / "kubemeta.prom").read_text()
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
