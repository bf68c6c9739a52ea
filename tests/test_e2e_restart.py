"""rsyslogd stopped while mmexternal waits for a reply.

rsyslog 8.2302 and 8.2504 interrupt a worker's read of the helper's reply when
they shut down (SIGTTIN), take the interrupted read as the reply ``{}``, and
leave the late reply in the pipe. Were that worker to send its helper another
record, the record would read the late reply: another record's metadata. These
tests stop rsyslogd while replies are slow (a pod not yet known waits for the
API up to lookup_deadline), again and again, and check that every line carries
its own pod's metadata, not only some metadata."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.server import Fault

from harness import (
    CRI,
    DOCKER,
    Rsyslog,
    container_log,
    cri_line,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

PODS = 30
RESTARTS = 4


class Writer(threading.Thread):
    """Lines ``<pod> <seq>`` to the pods' files, in a random order."""

    def __init__(self, files: dict[str, Path], cri: bool) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.format = cri_line if cri else docker_line
        self.n = 0
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        names = sorted(self.files)
        for seq in itertools.count():
            if self.stop.wait(0.002):
                return
            pod = rng.choice(names)
            write_lines(self.files[pod], [self.format(f"{pod} {seq}")])
            self.n = seq + 1


@pytest.mark.parametrize("name, workers", [(DOCKER, 1), (DOCKER, 2), (CRI, 1), (CRI, 2)])
def test_rsyslog_stopped_while_replies_wait_gives_each_line_its_own_pod(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path, name: str, workers: int
) -> None:
    emulator.world.apply(make_namespace("shop", {"team": "shop"}))
    files = {}
    for i in range(PODS):
        pod = f"p{i}"
        emulator.world.apply(make_pod("shop", pod, {"app": pod}))
        files[pod] = container_log(tmp_path, "shop", pod, "app")
        files[pod].touch()
    # Every pod GET outlasts the deadline: after each start, the first line of
    # each pod waits the whole deadline for its reply, so a stop comes while a
    # reply is on its way.
    emulator.add_fault(Fault("delay", path=r"/pods/", seconds=0.6))
    cfg = kubemeta_config(tmp_path, emulator, token_file, source="get", lookup_deadline=0.4,
                          snapshot_interval=0)
    text = shipped_snippet(tmp_path, cfg, name=name)
    text = text.replace('queue.workerThreads="2"', f'queue.workerThreads="{workers}"')
    text = text.replace('queue.workerThreadMinimumMessages="1000"',
                        'queue.workerThreadMinimumMessages="10"')
    rs = Rsyslog(tmp_path, text)
    writer = Writer(files, cri=name == CRI)
    rs.start()
    try:
        writer.start()
        for _ in range(RESTARTS):
            rs.wait_records(len(rs.records()) + 20, timeout=60)
            rs.stop()  # SIGTERM while replies wait, as systemctl restart does
            rs.start()
        rs.wait_records(len(rs.records()) + 20, timeout=60)
        writer.stop.set()
        writer.join()
        rs.wait_records(writer.n, timeout=120)
        time.sleep(1.0)  # nothing may come twice: give a duplicate its chance
        recs = rs.records()
    finally:
        rs.stop()
    assert len(recs) == writer.n, "a record for every line, none twice"
    got = [int(r["log"].split()[1]) for r in recs if "log" in r]
    assert len(set(got)) == len(got), "no line's text twice"
    bare = []
    for r in recs:
        k8s: dict[str, Any] | None = r.get("kubernetes")
        if k8s is None or "log" not in r:
            # rsyslog's own caveat: a reply it gave up on is taken as {} (and a CRI
            # record then has no $!log either).
            bare.append(r)
            continue
        pod = r["log"].split()[0]
        assert k8s["pod_name"] == pod, f"{r['log']!r} carries {k8s['pod_name']}'s metadata"
        assert k8s.get("labels", {"app": pod}) == {"app": pod}, r
        assert "kubemeta_of" not in r
    # At most a few records per stop and worker; far fewer in practice.
    assert len(bare) <= RESTARTS * workers * 2, bare
