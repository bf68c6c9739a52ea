"""kubemeta against rsyslog 8.2302's mmkubernetes: same files, same API objects,
the same $!kubernetes and $!docker objects, field for field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
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

MMK_MODULE = Path("/usr/lib/x86_64-linux-gnu/rsyslog/mmkubernetes.so")


def _world(emu: ApiEmulator) -> list[tuple[str, str, str]]:
    """Objects covering the schema's corners; returns the (ns, pod, container) log files."""
    emu.world.apply(make_namespace(
        "shop", {"team": "checkout", "env.tier": "prod"},
        {"owner.example.com/contact": "alice", "prometheus.io/scrape": "true", "misc": "x"}))
    emu.world.apply(make_namespace("bare"))
    emu.world.apply(make_pod(
        "shop", "web-7d9f8-abcde",
        {"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8", "a.b.c.d": "dots"},
        {"prometheus.io/scrape": "true", "prometheus.io/port": "9102",
         "kubectl.kubernetes.io/restartedAt": "2026-11-01T00:00:00Z", "team": "checkout"},
        containers=("app", "istio-proxy")))
    emu.world.apply(make_pod("shop", "db-0", {"app": "db"}, node="node-2"))
    emu.world.apply(make_pod("bare", "no.labels.pod"))
    return [
        ("shop", "web-7d9f8-abcde", "app"),
        ("shop", "web-7d9f8-abcde", "istio-proxy"),
        ("shop", "db-0", "db"),
        ("bare", "no.labels.pod", "main"),
        ("shop", "gone-pod", "app"),        # pod 404
        ("nowhere", "orphan", "app"),       # namespace and pod 404
    ]


def _mmkubernetes_conf(tmp: Path, emu: ApiEmulator, token_file: Path, opts: dict[str, Any]
                       ) -> str:
    rule = (f"rule=:{tmp / 'containers'}/%pod_name:char-to:_%_%namespace_name:char-to:_%_"
            "%container_name_and_id:char-to:.%.log")
    extra = ""
    if opts.get("annotation_match"):
        extra += " annotation_match=[" + ",".join(json.dumps(p) for p in
                                                  opts["annotation_match"]) + "]"
    if "de_dot" in opts:
        extra += f' de_dot="{"on" if opts["de_dot"] else "off"}"'
    if "de_dot_separator" in opts:
        extra += f' de_dot_separator="{opts["de_dot_separator"]}"'
    return f"""
module(load="imfile")
module(load="mmjsonparse")
module(load="mmkubernetes" kubernetesurl="{emu.url}" tls.cacert="{emu.pki.ca_file}"
       tokenfile="{token_file}" filenamerules=["{rule}"]{extra})
input(type="imfile" file="{tmp / 'containers'}/*.log" tag="kubernetes" addMetadata="on"
      ruleset="mmk")
ruleset(name="mmk" queue.type="LinkedList" queue.workerThreads="1") {{
    action(type="mmjsonparse" cookie="")
    action(type="mmkubernetes")
    call kubemeta_output
}}
"""


def _by_line(records: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {(Path(r["metadata"]["filename"]).name, r["log"]): (r.get("kubernetes"),
                                                               r.get("docker"))
            for r in records}


@pytest.mark.parametrize("opts", [
    {},
    {"annotation_match": ["^prometheus\\.io/", "team"], "de_dot_separator": "__"},
    {"annotation_match": ["."], "de_dot": False},
], ids=["defaults", "annotations-separator", "no-de-dot"])
def test_same_output_as_mmkubernetes(tmp_path: Path, emulator: ApiEmulator, token_file: Path,
                                     opts: dict[str, Any]) -> None:
    if not MMK_MODULE.exists():
        pytest.fail("mmkubernetes is required: install Debian's rsyslog-kubernetes")
    files = _world(emulator)
    lines_per_file = 3
    for ns, pod, cont in files:
        write_lines(container_log(tmp_path, ns, pod, cont),
                    [docker_line(f"{pod}/{cont} line {i}") for i in range(lines_per_file)])
    # A file no pattern matches: neither adds anything.
    write_lines(tmp_path / "containers" / "not-a-container-log.log", [docker_line("stray")])
    total = len(files) * lines_per_file + 1

    theirs = Rsyslog(tmp_path, _mmkubernetes_conf(tmp_path, emulator, token_file, opts), "mmk")
    with theirs:
        expected = theirs.wait_records(total)

    # A generous per-line deadline: mmkubernetes waits for the API without bound,
    # and the comparison is of what each makes of the API's answer.
    cfg = kubemeta_config(tmp_path, emulator, token_file, lookup_deadline=10, **opts)
    ours = Rsyslog(tmp_path, shipped_snippet(tmp_path, cfg), "kubemeta")
    with ours:
        got = ours.wait_records(total)

    want, have = _by_line(expected), _by_line(got)
    assert len(want) == len(have) == total
    assert set(want) == set(have)
    for key, value in want.items():
        assert have[key] == value, key
    # The comparison covered real metadata, not only file-name fields.
    web = next(v for k, v in want.items() if "web-7d9f8-abcde_shop_app" in k[0])
    assert web[0]["labels"] and web[0]["namespace_labels"] and web[0]["pod_id"]


@pytest.mark.parametrize("snippet", [TABLE_DOCKER, TABLE_CRI])
def test_table_mode_same_output_as_mmkubernetes(tmp_path: Path, emulator: ApiEmulator,
                                                token_file: Path, snippet: str) -> None:
    """The daemon watches node-1's pods and asks for db-0 (node-2) once it sees its
    file: those are table hits, enriched by rsyslog; the 404s are misses, left to
    the helper."""
    if not MMK_MODULE.exists():
        pytest.fail("mmkubernetes is required: install Debian's rsyslog-kubernetes")
    files = _world(emulator)
    mmk, mine = tmp_path / "mmk", tmp_path / "kubemeta"
    for root in (mmk, mine):
        root.mkdir()
    line = cri_line if snippet == TABLE_CRI else docker_line
    for ns, pod, cont in files:
        texts = [f"{pod}/{cont} line {i}" for i in range(3)]
        write_lines(container_log(mmk, ns, pod, cont), [docker_line(t) for t in texts])
        write_lines(container_log(mine, ns, pod, cont), [line(t) for t in texts])
    total = len(files) * 3

    theirs = Rsyslog(mmk, _mmkubernetes_conf(mmk, emulator, token_file, {}), "mmk")
    with theirs:
        expected = theirs.wait_records(total)

    cfg = kubemeta_config(mine, emulator, token_file, lookup_deadline=10, node_name="node-1",
                          watch_start_jitter=0)
    daemon = Daemon(cfg).start()
    try:
        hits = wait_table(mine, lambda t: len(t) == 4)
        ours = Rsyslog(mine, shipped_snippet(mine, cfg, name=snippet), "kubemeta")
        with ours:
            got = ours.wait_records(total)
    finally:
        daemon.stop()
    want, have = _by_line(expected), _by_line(got)
    assert len(want) == len(have) == total
    assert set(want) == set(have)
    for key, value in want.items():
        assert have[key] == value, key
    assert {Path(name).name for name in hits} == {
        container_log(mine, ns, pod, cont).name for ns, pod, cont in files[:4]}
