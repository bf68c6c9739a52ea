"""Both runtimes' log formats through a real rsyslogd with the shipped files."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    CRI,
    DOCKER,
    OMPROG,
    RSYSLOGD,
    SHIPPED,
    TABLE_CRI,
    TABLE_DOCKER,
    Daemon,
    Rsyslog,
    container_log,
    cri_line,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    wait_table,
    write_lines,
)

T = "2026-11-21T10:00:00.000000001Z"


def world(emu: ApiEmulator) -> None:
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    for pod in ("web-1", "job-1", "old-1"):
        emu.world.apply(make_pod("shop", pod, {"app": pod}, containers=("app",)))


@pytest.mark.parametrize("name", [DOCKER, CRI, OMPROG])
@pytest.mark.parametrize("output", ["60-kubemeta-output.conf.example",
                                    "60-kubemeta-output-kafka.conf.example"])
def test_shipped_files_validate(tmp_path: Path, name: str, output: str) -> None:
    cfg = tmp_path / "kubemeta.yaml"
    cfg.write_text("{}\n")
    body = shipped_snippet(tmp_path, cfg, name=name) + (SHIPPED / output).read_text()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{tmp_path}")\n' + body)
    res = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "error" not in (res.stderr + res.stdout).lower()


def test_cri_and_docker_on_one_node(tmp_path: Path, emulator: ApiEmulator,
                                    token_file: Path) -> None:
    world(emulator)
    cfg = kubemeta_config(tmp_path, emulator, token_file, merge_log=True)
    cri_file = container_log(tmp_path, "shop", "web-1", "app")      # containerd
    docker_file = container_log(tmp_path, "shop", "old-1", "app")   # docker json-file
    # Lines longer than the runtime's 16 KiB pieces, short ones, empty ones,
    # stderr, text that looks like a prefix, and a JSON application line.
    texts = [f"cri {i} " + chr(ord("a") + i % 26) * n
             for i, n in enumerate([40000, 10, 16384 - 6, 16384, 70000, 0, 5])]
    texts += ["2026-11-21T10:00:00Z stdout F not a prefix", '{"level":"warn","n":3}']
    cri = [cri_line(t, "stderr" if i % 3 == 0 else "stdout", T) for i, t in enumerate(texts)]
    write_lines(cri_file, cri)
    write_lines(docker_file, [docker_line(f"docker {i}") for i in range(5)])
    rs = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=CRI))
    with rs:
        recs = rs.wait_records(len(texts) + 5)
        time.sleep(1.0)
        recs = rs.records()
    assert len(recs) == len(texts) + 5
    from_cri = [r for r in recs if r["metadata"]["filename"] == str(cri_file)]
    assert [r["log"] for r in from_cri] == [t + "\n" for t in texts]
    for i, r in enumerate(from_cri):
        assert r["stream"] == ("stderr" if i % 3 == 0 else "stdout")
        assert r["time"] == T
        assert r["kubernetes"]["labels"] == {"app": "web-1"}
        assert r["kubernetes"]["namespace_labels"]["team"] == "shop"
        assert r["docker"]["container_id"]
    assert from_cri[-1]["log_processed"] == {"level": "warn", "n": 3}
    assert all("log_processed" not in r for r in from_cri[:-1])
    from_docker = [r for r in recs if r["metadata"]["filename"] == str(docker_file)]
    assert [r["log"] for r in from_docker] == [f"docker {i}\n" for i in range(5)]
    assert all(r["kubernetes"]["labels"] == {"app": "old-1"} for r in from_docker)


def test_kafka_example_template_is_json(tmp_path: Path, emulator: ApiEmulator,
                                        token_file: Path) -> None:
    """The Kafka example with only its omkafka action pointed at a file instead."""
    world(emulator)
    cfg = kubemeta_config(tmp_path, emulator, token_file)
    out = tmp_path / "kafka.json"
    kafka = (SHIPPED / "60-kubemeta-output-kafka.conf.example").read_text()
    kafka, n = re.subn(r'action\(type="omkafka".*?\n\s*confParam=\[[^\]]*\]\)',
                       f'action(type="omfile" file="{out}" template="kubemeta_kafka_json")',
                       kafka, flags=re.S)
    assert n == 1
    kafka = kafka.replace('module(load="omkafka")', "")
    # A file needs a newline between documents; a Kafka message does not.
    kafka = kafka.replace('string="%$!%")', 'string="%$!%\\n")')
    body = shipped_snippet(tmp_path, cfg, name=CRI) + kafka
    write_lines(container_log(tmp_path, "shop", "web-1", "app"),
                [cri_line("hello \"kafka\"", "stdout", T)])
    rs = Rsyslog(tmp_path, body, output=False)

    with rs:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().strip()):
            assert time.monotonic() < deadline, rs.stderr.read_text()
            time.sleep(0.1)
    doc = json.loads(out.read_text().splitlines()[0])
    assert doc["log"] == 'hello "kafka"\n' and doc["kubernetes"]["pod_name"] == "web-1"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", doc["@timestamp"]) and doc["host"]


class CriWriter(threading.Thread):
    """Appends numbered lines (every fifth one 20 KiB: in pieces for CRI) to a file."""

    def __init__(self, path: Path, period: float = 0.004, docker: bool = False) -> None:
        super().__init__(daemon=True)
        self.path, self.period, self.docker = path, period, docker
        self.n = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pad = "x" * 20000 if self.n % 5 == 0 else ""
            text = f"seq {self.n} {pad}".rstrip()
            line = docker_line(text, "stdout", T) if self.docker else cri_line(text, "stdout", T)
            write_lines(self.path, [line])
            self.n += 1
            time.sleep(self.period)


def seqs(recs: list[dict[str, Any]]) -> list[int]:
    return [int(r["log"].split()[1]) for r in recs if r.get("log", "").startswith("seq ")]


@pytest.mark.parametrize("name", [DOCKER, CRI, TABLE_DOCKER, TABLE_CRI])
def test_rsyslog_restarted_mid_stream_loses_nothing(tmp_path: Path, emulator: ApiEmulator,
                                                    token_file: Path, name: str) -> None:
    world(emulator)
    table = name in (TABLE_DOCKER, TABLE_CRI)
    cfg = kubemeta_config(tmp_path, emulator, token_file,
                          **({"node_name": "node-1", "watch_start_jitter": 0} if table else {}))
    path = container_log(tmp_path, "shop", "web-1", "app")
    path.touch()
    daemon = Daemon(cfg).start() if table else None
    if daemon is not None:
        wait_table(tmp_path, lambda t: len(t) == 1)
    rs = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=name))
    writer = CriWriter(path, docker=name in (DOCKER, TABLE_DOCKER))
    rs.start()
    try:
        writer.start()
        for _ in range(3):
            rs.wait_records(len(rs.records()) + 50, timeout=60)
            rs.stop()         # SIGTERM in the middle of the stream, as systemctl restart does
            rs.start()
        time.sleep(1.0)
        writer.stop.set()
        writer.join()
        recs = rs.wait_records(writer.n, timeout=90)
        time.sleep(2.0)
        recs = rs.records()
    finally:
        rs.stop()
        if daemon is not None:
            daemon.stop()
    got = seqs(recs)
    assert sorted(set(got)) == list(range(writer.n)), f"missing {set(range(writer.n)) - set(got)}"
    assert len(got) == writer.n, f"{len(got) - writer.n} duplicates"
    assert all(r["kubernetes"]["labels"] == {"app": "web-1"} for r in recs)
