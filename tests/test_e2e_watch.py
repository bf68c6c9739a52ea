"""source: watch, through a real rsyslogd with the shipped docker setup: labels
follow MODIFIED events with no GET, a watch cut every few seconds loses and
duplicates nothing, and a watch whose history expired lists again."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_node, make_pod

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

GETS = ("pod", "namespace")


def wait_synced(tmp: Path, timeout: float = 20.0) -> None:
    """Until the helper says its pod list is in (its own log, not a guess)."""
    log = tmp / "kubemeta.log"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.exists() and "pods on node node-1: listed" in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"no pod list within {timeout}s: "
                         f"{log.read_text()[-2000:] if log.exists() else 'no log'}")


@contextlib.contextmanager
def watching(tmp: Path, emu: ApiEmulator, token_file: Path, v: str = "1", **settings: Any
             ) -> Iterator[tuple[Rsyslog, Path]]:
    """rsyslogd with the shipped docker setup, its helper's pod list in, one record out."""
    emu.world.apply(make_namespace("shop", {"team": "shop"}))
    pod = make_pod("shop", "web-1", {"app": "web", "v": v})
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                           "name": "web", "controller": True}]
    emu.world.apply(pod)
    cfg = kubemeta_config(tmp, emu, token_file, node_name="node-1", watch_start_jitter=0,
                          watch_inactivity_timeout=5, **settings)
    log = container_log(tmp, "shop", "web-1", "app")
    with Rsyslog(tmp, shipped_snippet(tmp, cfg, name=DOCKER)) as rs:
        write_lines(log, [docker_line("start")])  # rsyslog starts its helper for a record
        rs.wait_records(1)
        wait_synced(tmp)
        yield rs, log


def labels_of(recs: list[dict[str, Any]]) -> list[str]:
    return [r["kubernetes"]["labels"].get("v", "") for r in recs]


def test_labels_follow_modified_events_without_gets(tmp_path: Path, emulator: ApiEmulator,
                                                     token_file: Path) -> None:
    with watching(tmp_path, emulator, token_file) as (rs, log):
        emulator.reset_counters()
        emulator.world.apply(make_pod("shop", "web-1", {"app": "web", "v": "2"}))
        emulator.world.apply(make_namespace("shop", {"team": "checkout"}))
        wait_log(tmp_path / "kubemeta.log", "pods on node node-1: MODIFIED shop/web-1 applied")
        wait_log(tmp_path / "kubemeta.log", "namespaces: MODIFIED shop applied")
        write_lines(log, [docker_line("second")])
        recs = rs.wait_records(2)
    assert recs[1]["kubernetes"]["labels"] == {"app": "web", "v": "2"}
    assert recs[1]["kubernetes"]["namespace_labels"]["team"] == "checkout"
    by_kind = emulator.world.by_kind
    assert sum(by_kind[k] for k in GETS) == 0, by_kind


def test_node_labels_come_filtered_and_follow_the_nodes_changes(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    zone, itype = "topology.kubernetes.io/zone", "node.kubernetes.io/instance-type"
    emulator.world.apply(make_node("node-1", {zone: "eu-1a", itype: "m5.large", "team": "x"}))
    emulator.world.apply(make_node("node-2", {zone: "eu-1b"}))
    log = tmp_path / "kubemeta.log"
    with watching(tmp_path, emulator, token_file, extra_fields=["node_labels"]) as (rs, path):
        wait_log(log, "topology_kubernetes_io/zone=eu-1a event=node_labels")
        write_lines(path, [docker_line("second")])
        first = rs.wait_records(2)[1]["kubernetes"]
        emulator.world.apply(make_node("node-1", {zone: "eu-1c", itype: "m5.large"}))
        wait_log(log, "topology_kubernetes_io/zone=eu-1c event=node_labels")
        write_lines(path, [docker_line("third")])
        later = rs.wait_records(3)[2]["kubernetes"]
    assert first["node_labels"] == {"topology_kubernetes_io/zone": "eu-1a",
                                    "node_kubernetes_io/instance-type": "m5.large"}
    assert list(first)[-1] == "node_labels"  # after mmkubernetes's own fields
    assert later["node_labels"]["topology_kubernetes_io/zone"] == "eu-1c"
    kinds = emulator.world.by_kind
    assert kinds["node_list"] == 1 and kinds["node"] == 0  # one list, then the watch


class Writer(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.n = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            write_lines(self.path, [docker_line(f"seq {self.n}")])
            self.n += 1
            time.sleep(0.005)


def test_watch_cut_every_few_seconds_loses_nothing(tmp_path: Path, emulator: ApiEmulator,
                                                   token_file: Path) -> None:
    with watching(tmp_path, emulator, token_file, v="0") as (rs, path):
        writer = Writer(path)
        writer.start()
        for v in range(1, 6):
            time.sleep(2.0)
            emulator.cut_watches()
            # A change made while the watch is down arrives when it resumes.
            emulator.world.apply(make_pod("shop", "web-1", {"app": "web", "v": str(v)}))
        # The last change arrives once the watch is back (after its backoff).
        deadline = time.monotonic() + 30
        while not (recs := rs.records()) or labels_of(recs)[-1] != "5":
            assert time.monotonic() < deadline, "the last change never arrived"
            time.sleep(0.2)
        writer.stop.set()
        writer.join()
        final = writer.n
        write_lines(path, [docker_line("last")])
        recs = rs.wait_records(final + 2, timeout=60)
        time.sleep(1.0)
        recs = rs.records()
    seqs = [int(r["log"].split()[1]) for r in recs if r["log"].startswith("seq ")]
    assert sorted(seqs) == list(range(final)), "every line exactly once"
    assert all(r["kubernetes"].get("labels", {}).get("app") == "web" for r in recs)
    versions = [int(v) for v in labels_of(recs)]
    assert versions == sorted(versions), "labels never go back to an older version"
    assert versions[-1] == 5
    kinds = emulator.world.by_kind
    assert kinds["pod_list"] == 1, "a cut watch resumes from its version, without a list"
    assert kinds["pod_watch"] >= 6


def test_expired_history_lists_again(tmp_path: Path, emulator: ApiEmulator,
                                     token_file: Path) -> None:
    with watching(tmp_path, emulator, token_file) as (rs, log):
        # The API restarts, and the changes made meanwhile leave its history.
        emulator.set_phase("refused")
        emulator.world.apply(make_pod("shop", "web-1", {"app": "web", "v": "2"}))
        emulator.world.compact()
        time.sleep(1.0)
        emulator.set_phase("ok")
        end = time.monotonic() + 20
        while emulator.world.by_kind["pod_list"] < 2:
            assert time.monotonic() < end, emulator.world.by_kind
            time.sleep(0.1)
        wait_log(tmp_path / "kubemeta.log", "pods on node node-1: listed 1 again")
        write_lines(log, [docker_line("after")])
        recs = rs.wait_records(2)
    assert recs[1]["kubernetes"]["labels"] == {"app": "web", "v": "2"}
    text = (tmp_path / "kubemeta.log").read_text()
    assert "watch history expired (410 Gone); listing again" in text


def test_deleted_and_recreated_pods_keep_their_own_metadata(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    with watching(tmp_path, emulator, token_file) as (rs, _):
        # A Job's pod runs and is deleted before rsyslog reads its lines.
        emulator.world.apply(make_pod("shop", "job-1", {"job": "backup"}))
        # A StatefulSet's pod is deleted and made again under the same name.
        emulator.world.apply(make_pod("shop", "db-0", {"gen": "1"}, uid="uid-db-gen1"))
        log = tmp_path / "kubemeta.log"
        wait_log(log, "pods on node node-1: ADDED shop/job-1 applied")
        wait_log(log, "pods on node node-1: ADDED shop/db-0 applied")
        emulator.world.delete("Pod", "shop", "job-1")
        emulator.world.delete("Pod", "shop", "db-0")
        emulator.world.apply(make_pod("shop", "db-0", {"gen": "2"}, uid="uid-db-gen2"))
        wait_log(log, "pods on node node-1: DELETED shop/job-1 applied")
        wait_log(log, "pods on node node-1: ADDED shop/db-0 applied", count=2)
        write_lines(container_log(tmp_path, "shop", "job-1", "app"),
                    [docker_line("job line")])
        write_lines(container_log(tmp_path, "shop", "db-0", "app", "uid-db-gen1"),
                    [docker_line("old db line")])
        write_lines(container_log(tmp_path, "shop", "db-0", "app", "uid-db-gen2"),
                    [docker_line("new db line")])
        recs = rs.wait_records(4)
    by_log = {r["log"]: r["kubernetes"] for r in recs}
    assert by_log["job line\n"]["labels"] == {"job": "backup"}
    assert by_log["old db line\n"]["labels"] == {"gen": "1"}
    assert by_log["old db line\n"]["pod_id"] == "uid-db-gen1"
    assert by_log["new db line\n"]["labels"] == {"gen": "2"}
    assert by_log["new db line\n"]["pod_id"] == "uid-db-gen2"


@pytest.mark.parametrize("source", ["get", "watch"])
def test_helper_restarted_during_403_enriches_known_pods_from_its_first_line(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path, source: str) -> None:
    emulator.world.apply(make_namespace("shop", {"team": "shop"}))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    cfg = kubemeta_config(tmp_path, emulator, token_file, node_name="node-1", source=source,
                          watch_start_jitter=0)
    log = container_log(tmp_path, "shop", "web-1", "app")
    rs = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=DOCKER))
    with rs:
        write_lines(log, [docker_line("before")])
        rs.wait_records(1)
    # Written when the helper stops, which rsyslog does not wait for.
    end = time.monotonic() + 10
    while not list((tmp_path / "state").glob("snapshot-*.json")):
        assert time.monotonic() < end, "no snapshot written when the helper stopped"
        time.sleep(0.05)
    emulator.set_phase("forbidden")  # a control-plane restart: RBAC not synced yet
    with rs:
        write_lines(log, [docker_line("after")])
        recs = rs.wait_records(2)
    assert recs[1]["log"] == "after\n"
    assert recs[1]["kubernetes"]["labels"] == {"app": "web"}
    assert recs[1]["kubernetes"]["namespace_labels"]["team"] == "shop"
    text = (tmp_path / "kubemeta.log").read_text()
    assert "warm start: 1 pods, 1 namespaces" in text


def test_extra_fields_when_asked(tmp_path: Path, emulator: ApiEmulator,
                                 token_file: Path) -> None:
    fields = ["pod_ip", "container_image", "container_image_id", "owner"]
    with watching(tmp_path, emulator, token_file, extra_fields=fields) as (rs, log):
        write_lines(log, [docker_line("more")])
        recs = rs.wait_records(2)
    k = recs[1]["kubernetes"]
    assert (k["pod_ip"], k["statefulset"], k["container_image"]) == (
        "10.244.1.7", "web", "registry.example/app:1.0")
    assert k["container_image_id"].startswith("registry.example/app@sha256:")


def test_a_cold_helper_lists_at_once_whatever_the_jitter(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    cfg = kubemeta_config(tmp_path, emulator, token_file, node_name="node-1",
                          watch_start_jitter=3600)  # no snapshot: no reason to wait
    with Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=DOCKER)) as rs:
        write_lines(container_log(tmp_path, "shop", "web-1", "app"), [docker_line("start")])
        rs.wait_records(1)
        wait_synced(tmp_path)


def prometheus(path: Path, after: float) -> dict[str, float]:
    """The Prometheus file's samples, once it has been written after ``after``
    (time.time()); a sample with labels is keyed as written."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime > after:
                return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                        for line in path.read_text().splitlines()
                        if line and not line.startswith("#")}
        time.sleep(0.05)
    raise AssertionError(f"{path} not written within 30 s")


def test_the_metrics_tell_a_hanging_api_from_a_quiet_healthy_one(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    prom = tmp_path / "kubemeta.prom"
    emulator.world.bookmark_interval = 0.2  # a healthy, quiet API: bookmarks only
    with watching(tmp_path, emulator, token_file, prometheus_file=str(prom),
                  stats_interval=0.2, lookup_deadline=5):
        since = time.time()
        quiet = prometheus(prom, since + 3)  # quiet for 3 s, longer than a bookmark's gap
        assert quiet['kubemeta_watchup{resource="pods"}'] == 1
        assert quiet['kubemeta_watchup{resource="namespaces"}'] == 1
        assert 0 <= quiet['kubemeta_watchsecondssinceheard{resource="pods"}'] < 3
        assert 0 <= quiet["kubemeta_secondssincelastsuccess"] < 3  # no GET since the start
        assert quiet['kubemeta_apirequests_total{verb="list",status="200"}'] >= 2  # pods, ns
        assert quiet['kubemeta_apirequests_total{verb="watch",status="200"}'] >= 2
        emulator.set_phase("hang")  # the watches are cut, and nothing answers any more
        hung = prometheus(prom, time.time() + 1)
        assert hung['kubemeta_watchup{resource="pods"}'] == 0
        later = prometheus(prom, time.time() + 1)
        assert later['kubemeta_watchsecondssinceheard{resource="pods"}'] > \
            hung['kubemeta_watchsecondssinceheard{resource="pods"}'] >= 1
        assert later["kubemeta_secondssincelastsuccess"] > hung[
            "kubemeta_secondssincelastsuccess"]
        emulator.set_phase("ok")
        end = time.monotonic() + 60
        while True:
            back = prometheus(prom, time.time())
            if back['kubemeta_watchup{resource="pods"}'] == 1:
                break
            assert time.monotonic() < end, "the watch did not come back"
        assert back['kubemeta_watchsecondssinceheard{resource="pods"}'] < \
            later['kubemeta_watchsecondssinceheard{resource="pods"}']


def status(cfg: Path) -> tuple[int, dict[str, Any]]:
    out = subprocess.run([str(KUBEMETA_BIN), "status", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, (json.loads(out.stdout) if out.stdout.startswith("{") else
                            {"text": out.stdout})


def status_until(cfg: Path, code: int) -> dict[str, Any]:
    end = time.monotonic() + 60
    while True:
        got, report = status(cfg)
        if got == code:
            return report
        assert time.monotonic() < end, f"status stayed {got}: {report}"
        time.sleep(0.2)


def test_status_tells_a_hanging_api_and_its_recovery(tmp_path: Path, emulator: ApiEmulator,
                                                     token_file: Path) -> None:
    cfg = tmp_path / "kubemeta.yaml"
    with watching(tmp_path, emulator, token_file, lookup_deadline=5):
        healthy = status_until(cfg, 0)
        assert healthy["problems"] == [] and healthy["watches"]["pods"]["up"] is True
        assert healthy["cache"]["pods"] == 1 and healthy["api"]["breaker"] == "closed"
        assert healthy["api"]["requests_last_minute"].get("list.200", 0) >= 2
        emulator.set_phase("hang")
        sick = status_until(cfg, 1)
        assert any(p.startswith("the watch of pods is failing") for p in sick["problems"])
        text = subprocess.run([str(KUBEMETA_BIN), "status", "--config", str(cfg)],
                              capture_output=True, text=True, timeout=60).stdout
        assert text.startswith("DEGRADED kubemeta ") and "watch pods: FAILING" in text
        emulator.set_phase("ok")
        back = status_until(cfg, 0)
        assert back["leader"]["pid"] == healthy["leader"]["pid"]
    # No helper any more: nobody can tell.
    code, report = status(cfg)
    assert code == 3 and report["text"].startswith("UNKNOWN no kubemeta helper answered")
