"""Table mode through a real rsyslogd with the shipped table snippets: the
``kubemeta serve`` daemon keeps the lookup table, rsyslog enriches hits itself
and sends misses to the mmexternal helper, which follows the daemon."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    CRI,
    DOCKER,
    TABLE_CRI,
    TABLE_DOCKER,
    Daemon,
    Rsyslog,
    container_log,
    cri_line,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    wait_log,
    wait_table,
    write_lines,
)

T = "2026-11-21T10:00:00.000000001Z"
PODS = 6


def cluster(emu: ApiEmulator, tmp: Path) -> dict[str, Path]:
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    files = {}
    for i in range(PODS):
        pod = f"web-{i}"
        emu.world.apply(make_pod("shop", pod, {"app": pod}, node="node-1"))
        files[pod] = container_log(tmp, "shop", pod, "app")
        files[pod].touch()
    return files


def serving(emu: ApiEmulator, tmp: Path, token_file: Path) -> tuple[dict[str, Path], Path, Daemon]:
    """The cluster, kubemeta's config, and its daemon with every pod's file in its table."""
    files = cluster(emu, tmp)
    cfg = kubemeta_config(tmp, emu, token_file, node_name="node-1", watch_start_jitter=0,
                          log_level="info")
    daemon = Daemon(cfg).start()
    wait_table(tmp, lambda t: len(t) == PODS)
    return files, cfg, daemon


def line_of(runtime: str, text: str) -> str:
    return cri_line(text, "stdout", T) if runtime == CRI else docker_line(text, "stdout", T)


def by_offset(recs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["metadata"]["filename"], r["metadata"]["fileoffset"]): r for r in recs}


@pytest.mark.parametrize("runtime", [DOCKER, CRI])
def test_table_hits_are_enriched_by_rsyslog_as_mmexternal_would(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path, runtime: str) -> None:
    files = cluster(emulator, tmp_path)
    cfg = kubemeta_config(tmp_path, emulator, token_file, node_name="node-1",
                          watch_start_jitter=0, log_level="info")
    daemon = Daemon(cfg).start()
    try:
        wait_table(tmp_path, lambda t: len(t) == PODS)
        table = Rsyslog(tmp_path, shipped_snippet(
            tmp_path, cfg, name=TABLE_CRI if runtime == CRI else TABLE_DOCKER), name="table")
        reference = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=runtime),
                            name="mmexternal")
        lines = 0
        with table, reference:
            for k in range(20):
                for pod, path in files.items():
                    # A CRI line of 20 KiB comes in pieces: the helper joins those.
                    pad = " " + "x" * 20000 if runtime == CRI and k == 3 else ""
                    write_lines(path, [line_of(runtime, f"{pod} {k}{pad}")])
                    lines += 1
                if k == 2:
                    table.wait_records(lines, timeout=60)
                    # Every line so far was a hit: rsyslog enriched it, no helper ran.
                    assert table.helpers() == []
            got = table.wait_records(lines, timeout=60)
            want = reference.wait_records(lines, timeout=60)
        assert len(got) == lines and len(want) == lines
        mine, theirs = by_offset(got), by_offset(want)
        assert mine.keys() == theirs.keys(), "every line exactly once"
        for key, rec in mine.items():
            assert list(rec.items()) == list(theirs[key].items()), key
            assert rec["kubernetes"]["labels"] == {"app": rec["log"].split()[0]}
    finally:
        daemon.stop()
    assert "follower of this node's helpers" in (tmp_path / "kubemeta.log").read_text(), \
        "the reference's helpers followed the daemon"


def test_a_label_change_new_pod_and_daemon_kill_lose_nothing(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    files, cfg, daemon = serving(emulator, tmp_path, token_file)
    written: list[tuple[float, str]] = []
    stop = threading.Event()

    def write() -> None:
        k = 0
        while not stop.wait(0.01):
            for pod, path in list(files.items()):
                write_lines(path, [docker_line(f"{pod} {k}")])
                written.append((time.monotonic(), f"{pod} {k}"))
            k += 1

    rs = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=TABLE_DOCKER))
    writer = threading.Thread(target=write, daemon=True)
    try:
        rs.start()
        writer.start()
        rs.wait_records(50)
        # A label change reaches the table, and rsyslog's lines.
        changed_at = time.monotonic()
        emulator.world.apply(make_pod("shop", "web-0", {"app": "web-0", "v": "2"},
                                      node="node-1"))
        wait_table(tmp_path, lambda t: any(v["kubernetes"]["labels"].get("v") == "2"
                                           for v in t.values()))
        relabelled = rs.wait_records(0, until=lambda rr: any(
            r["kubernetes"]["labels"].get("v") == "2" for r in rr))
        seen_at = time.monotonic()
        # A new pod: its first lines are misses (the helper), then hits.
        emulator.world.apply(make_pod("shop", "new-1", {"app": "new-1"}, node="node-1"))
        files["new-1"] = container_log(tmp_path, "shop", "new-1", "app")
        rs.wait_records(0, until=lambda rr: any(r["log"].startswith("new-1") for r in rr))
        # The daemon dies: rsyslog keeps its table, misses go to the helper, which
        # takes the lead; the daemon comes back and follows it.
        daemon.stop(signal.SIGKILL)
        n = len(rs.records())
        rs.wait_records(n + 50)
        daemon.start()
        rs.wait_records(len(rs.records()) + 50)
    finally:
        stop.set()
        writer.join()
        if daemon.proc is not None:
            daemon.stop()
    recs = rs.wait_records(len(written), timeout=60)
    rs.stop()
    assert sorted(r["log"].strip() for r in recs) == sorted(t for _, t in written), \
        "every line exactly once"
    for r in recs:
        pod = r["log"].split()[0]
        labels = r["kubernetes"]["labels"]
        assert labels in ({"app": pod}, {"app": pod, "v": "2"}), r
    first = min(t for t, text in written if text.startswith("web-0 ") and any(
        r["log"].strip() == text and r["kubernetes"]["labels"].get("v") == "2"
        for r in relabelled))
    print(f"a label change reached rsyslog's lines {first - changed_at:.2f} s after it")
    late = {text for t, text in written if t > seen_at and text.startswith("web-0 ")}
    old = {r["log"].strip() for r in recs if r["kubernetes"]["labels"] == {"app": "web-0"}}
    assert late and not old & late, "once rsyslog has the change, every later line carries it"
    log = (tmp_path / "kubemeta.log").read_text()
    assert "leading this node's helpers now" in log, "a helper took the lead from the daemon"


@pytest.mark.parametrize("runtime", [DOCKER, CRI])
def test_a_table_value_that_does_not_parse_sends_its_lines_to_the_helper(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path, runtime: str) -> None:
    """A value rsyslog cannot parse (a table written by something else, a value cut
    short) is a miss, not a hit without metadata: the helper enriches its lines."""
    files, cfg, daemon = serving(emulator, tmp_path, token_file)
    daemon.stop()
    bad, good = files["web-0"], files["web-1"]
    path = tmp_path / "state" / "lookup-table.json"
    doc = json.loads(path.read_text())
    for row in doc["table"]:
        if row["index"] == str(bad):
            row["value"] = row["value"][:40]
    path.write_text(json.dumps(doc))
    snippet = shipped_snippet(tmp_path, cfg, name=TABLE_CRI if runtime == CRI else TABLE_DOCKER)
    with Rsyslog(tmp_path, snippet) as rs:
        write_lines(good, [line_of(runtime, "web-1 hit")])
        rs.wait_records(1)
        assert rs.helpers() == [], "a hit needs no helper"
        write_lines(bad, [line_of(runtime, "web-0 miss")])
        recs = rs.wait_records(2)
        assert rs.helpers() != [], "the line the table could not enrich went to the helper"
    assert sorted(r["log"] for r in recs) == ["web-0 miss\n", "web-1 hit\n"]
    for r in recs:
        assert r["kubernetes"]["labels"] == {"app": r["log"].split()[0]}, r


def test_a_broken_table_file_keeps_rsyslogs_last_good_table(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    files, cfg, daemon = serving(emulator, tmp_path, token_file)
    with Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=TABLE_DOCKER)) as rs:
        for pod, path in files.items():
            write_lines(path, [docker_line(f"{pod} before")])
        rs.wait_records(PODS)
        daemon.stop()
        # A broken table, and a reload: rsyslog says so and keeps the last good one.
        (tmp_path / "state" / "lookup-table.json").write_text('{"table": [{"index": ')
        write_lines(tmp_path / "state" / "lookup-table.reload", ["reload\n"])
        wait_log(rs.stderr, "could not be reloaded")
        for pod, path in files.items():
            write_lines(path, [docker_line(f"{pod} after")])
        recs = rs.wait_records(2 * PODS)
        assert rs.helpers() == [], "every line was a hit, from the last good table"
    assert sorted(r["log"] for r in recs) == sorted(
        f"{pod} {when}\n" for pod in files for when in ("before", "after"))
    for r in recs:
        assert r["kubernetes"]["labels"] == {"app": r["log"].split()[0]}
