"""source: kubelet — the kubelet source against the emulator's kubelet over
HTTPS, and end to end through a real rsyslogd while the API is down."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from pathlib import Path

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod
from kubemeta import config
from kubemeta.app import App
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ApiNotFound, ApiUnauthorized, ApiUnreachable
from kubemeta.kube.fetchers import ApiFetcher, KubeletFetcher, KubeletPolling

from conftest import TOKEN
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


@pytest.fixture
def node(emulator: ApiEmulator) -> ApiEmulator:
    emulator.world.apply(make_namespace("shop", {"team": "shop"}))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    emulator.world.apply(make_pod("shop", "elsewhere", node="node-2"))
    return emulator


def source(emu: ApiEmulator, kubelet_url: str) -> tuple[KubeletFetcher, MetadataStore]:
    """The fetcher app.py builds for such a config, not polling by itself."""
    cfg = config.Config(kubernetes_url=emu.url, ca_file=emu.pki.ca_file, token=TOKEN,
                        node_name="node-1", source="kubelet", kubelet_url=kubelet_url,
                        kubelet_min_interval=0.5)
    parts = App(cfg)
    store = parts.store()
    api = ApiFetcher(parts.api(), parts.shaper)
    polling = KubeletPolling(cfg.kubelet_min_interval, cfg.kubelet_refresh_interval)
    return KubeletFetcher(api, parts.api(kubelet=True), store, parts.shaper, polling), store


def test_pods_come_from_the_kubelet_one_request_however_many_misses(node: ApiEmulator) -> None:
    kubelet = node.start_kubelet("node-1")
    src, store = source(node, kubelet.url)
    results: list[object] = []

    def ask(name: str) -> None:
        try:
            results.append(src.pod("shop", name).labels)
        except ApiNotFound as e:
            results.append(e.status)

    threads = [threading.Thread(target=ask, args=(n,)) for n in ["web-1"] * 5 + ["ghost"] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, results)) == sorted(["{'app': 'web'}"] * 5 + ["404"] * 5)
    # one list for all ten; the ghosts look once more, together, after the rate limit
    assert node.world.by_kind["kubelet_pods"] == src.fetches == 2
    assert node.world.by_kind["pod"] == 0  # the API was not asked
    assert store.watched("pod") == 1  # only this node's pods


def test_kubelet_down_is_an_api_error_and_pods_stay_known(node: ApiEmulator) -> None:
    kubelet = node.start_kubelet("node-1")
    src, store = source(node, kubelet.url)
    src.refresh(force=True)
    kubelet.stop()
    with pytest.raises(ApiUnreachable):
        src.refresh(force=True)
    assert store.watched("pod") == 1


def test_kubelet_keeps_serving_while_the_api_restarts(tmp_path: Path, node: ApiEmulator,
                                                      token_file: Path) -> None:
    kubelet = node.start_kubelet("node-1")
    cfg = kubemeta_config(tmp_path, node, token_file, node_name="node-1", source="kubelet",
                          kubelet_url=kubelet.url, kubelet_min_interval=0.5,
                          kubelet_refresh_interval=60)
    with Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=DOCKER)) as rs:
        write_lines(container_log(tmp_path, "shop", "web-1", "app"), [docker_line("before")])
        rs.wait_records(1)
        node.set_phase("refused")  # the control plane restarts
        node.world.apply(make_pod("shop", "web-2", {"app": "web-2"}))  # scheduled meanwhile
        write_lines(container_log(tmp_path, "shop", "web-2", "app"), [docker_line("during")])
        recs = rs.wait_records(2)
    first, second = recs
    assert first["kubernetes"]["labels"] == {"app": "web"}
    assert second["kubernetes"]["labels"] == {"app": "web-2"}, "a miss refreshed the list"
    assert second["kubernetes"]["namespace_labels"]["team"] == "shop"
    assert node.world.by_kind["pod"] == 0, "no pod was asked of the API"


def test_check_asks_the_kubelet(tmp_path: Path, node: ApiEmulator, token_file: Path) -> None:
    kubelet = node.start_kubelet("node-1")
    cfg = kubemeta_config(tmp_path, node, token_file, node_name="node-1", source="kubelet",
                          kubelet_url=kubelet.url)
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert f"ok   get pods from the kubelet at {kubelet.url}" in out.stdout
    kubelet.stop()
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"FAIL get pods from the kubelet at {kubelet.url}: connection refused" in out.stdout


def test_a_pod_newer_than_the_last_list_is_found_not_missed(node: ApiEmulator) -> None:
    kubelet = node.start_kubelet("node-1")
    src, _ = source(node, kubelet.url)
    src.refresh(force=True)
    node.world.apply(make_pod("shop", "web-2", {"app": "web-2"}))  # just scheduled
    assert src.pod("shop", "web-2").labels == {"app": "web-2"}
    assert src.fetches == 2


def test_no_credentials_go_to_a_kubelet_that_is_not_verified(node: ApiEmulator) -> None:
    """Any local user can listen on the kubelet's port while the kubelet is down."""
    kubelet = node.start_kubelet("node-1")
    cfg = config.Config(kubernetes_url=node.url, ca_file=node.pki.ca_file, token=TOKEN,
                        node_name="node-1", source="kubelet", kubelet_url=kubelet.url,
                        kubelet_insecure_skip_tls_verify=True)
    api = App(cfg).api(kubelet=True)
    assert any("sends no credentials" in w for w in api.warnings)
    with pytest.raises(ApiUnauthorized):  # the kubelet was asked without the token
        list(api.kubelet_pods())
    verified = App(dataclasses.replace(cfg, kubelet_insecure_skip_tls_verify=False))
    assert [p["metadata"]["name"] for p in verified.api(kubelet=True).kubelet_pods()] == [
        "web-1"]


def test_the_kubelet_stands_in_for_new_pods_through_a_master_restart(
        tmp_path: Path, node: ApiEmulator, token_file: Path) -> None:
    kubelet = node.start_kubelet("node-1")
    cfg = kubemeta_config(tmp_path, node, token_file, node_name="node-1", watch_start_jitter=0,
                          kubelet_fallback=True, kubelet_url=kubelet.url,
                          kubelet_min_interval=0.5, lookup_deadline=2)
    log = tmp_path / "kubemeta.log"
    new = container_log(tmp_path, "shop", "web-2", "app")
    with Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg, name=DOCKER)) as rs:
        write_lines(container_log(tmp_path, "shop", "web-1", "app"), [docker_line("before")])
        rs.wait_records(1)
        wait_log(log, "pods on node node-1: listed 1")
        assert node.world.by_kind["kubelet_pods"] == 0, "the kubelet is left alone meanwhile"
        node.set_phase("refused")  # the control plane restarts: connections refused...
        wait_log(log, "pods on node node-1: watch failed")
        node.world.apply(make_pod("shop", "web-2", {"app": "web-2"}))  # ...a pod starts
        write_lines(new, [docker_line(f"refused {i}") for i in range(30)])
        rs.wait_records(31)
        node.set_phase("forbidden")  # ...then it answers 403 for a while
        write_lines(new, [docker_line(f"forbidden {i}") for i in range(30)])
        recs = rs.wait_records(61)
        during = [r for r in recs if r["log"].startswith(("refused", "forbidden"))]
        assert node.world.by_kind["pod"] == 0 and node.world.by_kind["pod_watch"] <= 2
        node.set_phase("ok")
        wait_log(log, "watch restored")
        write_lines(new, [docker_line("after")])  # a line says the outage is over
        rs.wait_records(62)
        wait_log(log, "the Kubernetes API answers again")
    labelled = [r for r in during if r["kubernetes"].get("labels") == {"app": "web-2"}]
    assert len(labelled) >= 0.95 * len(during), f"{len(labelled)} of {len(during)} labelled"
    # With the namespace's metadata kubemeta knew before the outage.
    assert labelled[-1]["kubernetes"]["namespace_labels"]["team"] == "shop"
    text = log.read_text()
    assert text.count("are taken from the kubelet") == 1  # once per outage
