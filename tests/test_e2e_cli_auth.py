"""`kubemeta enrich` and `kubemeta check` as real processes, each way of authenticating."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.objects import container_id

from conftest import TOKEN
from harness import KUBEMETA_BIN, fulljson, kubemeta_config


@pytest.fixture
def world(emulator: ApiEmulator) -> ApiEmulator:
    emulator.world.apply(make_namespace("shop", {"team": "checkout"}))
    for name in ("web-1", "web-2", "web-3"):
        emulator.world.apply(make_pod("shop", name, {"app": name}))
    return emulator


def line_for(pod: str) -> bytes:
    return fulljson(f"/var/log/containers/{pod}_shop_app-{container_id('shop', pod, 'app')}.log")


def enrich(cfg: Path, *pods: str, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    data = b"".join(line_for(p) + b"\n" for p in pods)
    out = subprocess.run([str(KUBEMETA_BIN), "enrich", "--config", str(cfg), *extra],
                         input=data, capture_output=True, timeout=60, check=True)
    return [json.loads(x) for x in out.stdout.splitlines()]


def plain_config(tmp: Path, emu: ApiEmulator, **kw: Any) -> Path:
    cfg = kubemeta_config(tmp, emu, None)
    data = yaml.safe_load(cfg.read_text())
    data.update(kw)
    data["filename_patterns"] = None  # the real /var/log/containers default
    data = {k: v for k, v in data.items() if v is not None}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def labels(rec: dict[str, Any]) -> Any:
    return rec["$!"]["kubernetes"].get("labels")


def test_token_file(tmp_path: Path, world: ApiEmulator, token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    assert [labels(r) for r in enrich(cfg, "web-1")] == [{"app": "web-1"}]


def test_literal_token(tmp_path: Path, world: ApiEmulator) -> None:
    cfg = plain_config(tmp_path, world, token=TOKEN)
    assert [labels(r) for r in enrich(cfg, "web-1")] == [{"app": "web-1"}]


def test_client_certificate(tmp_path: Path, world: ApiEmulator) -> None:
    cfg = plain_config(tmp_path, world, client_cert_file=world.pki.client_cert,
                       client_key_file=world.pki.client_key)
    assert [labels(r) for r in enrich(cfg, "web-1")] == [{"app": "web-1"}]


def test_kubeconfig(tmp_path: Path, world: ApiEmulator) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {"server": world.url,
                                                 "certificate-authority": world.pki.ca_file}}],
        "users": [{"name": "kubemeta", "user": {"token": TOKEN}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "kubemeta"}}]}))
    cfg = plain_config(tmp_path, world, kubeconfig=str(kc))
    data = yaml.safe_load(cfg.read_text())
    del data["ca_file"]
    cfg.write_text(yaml.safe_dump(data))
    assert [labels(r) for r in enrich(cfg, "web-1")] == [{"app": "web-1"}]


def test_tls_is_verified_unless_told_otherwise(tmp_path: Path, world: ApiEmulator,
                                               token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    data = yaml.safe_load(cfg.read_text())
    del data["ca_file"]  # the system CAs do not know the emulator's CA
    cfg.write_text(yaml.safe_dump(data))
    assert [labels(r) for r in enrich(cfg, "web-1")] == [None]
    assert [labels(r) for r in enrich(cfg, "web-1", extra=("--insecure-skip-tls-verify",
                                                            "true"))] == [{"app": "web-1"}]


def test_rotated_token_file_is_picked_up(tmp_path: Path, world: ApiEmulator,
                                         token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    world.add_token("rotated-token", "system:serviceaccount:kube-system:kubemeta")
    token_file.write_text("rotated-token\n")
    with world.world.lock:
        del world.world.tokens[TOKEN]
    assert [labels(r) for r in enrich(cfg, "web-2")] == [{"app": "web-2"}]


def test_check_passes_against_a_healthy_api(tmp_path: Path, world: ApiEmulator,
                                            token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert "ok   get namespace default" in out.stdout
    assert "list pods" not in out.stdout  # source: get needs no list or watch


def test_check_tries_what_a_watch_needs(tmp_path: Path, world: ApiEmulator,
                                        token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg),
                          "--node-name", "node-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    for what in ("list pods on node node-1", "list namespaces", "watch pods on node node-1",
                 "watch namespaces"):
        assert f"ok   {what}" in out.stdout
    assert world.world.by_kind["pod_watch"] == 1


def test_check_tries_the_node_watch_that_node_labels_need(tmp_path: Path, world: ApiEmulator,
                                                          token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg), "--node-name",
                          "node-1", "--extra-fields", "[node_labels]"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert "ok   list node node-1" in out.stdout and "ok   watch node node-1" in out.stdout
    assert "warn no node node-1" in out.stdout  # the emulator has no Node objects here
    assert world.world.by_kind["node_watch"] == 1


def test_check_names_the_failure(tmp_path: Path, world: ApiEmulator, token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    with world.world.lock:
        world.world.forbidden_users = {"system:serviceaccount:kube-system:kubemeta"}
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "FAIL get namespace default" in out.stdout and "403 Forbidden" in out.stdout
    assert 'cannot get resource "namespaces"' in out.stdout


def test_check_rejects_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "k.yaml"
    cfg.write_text("de_dot: maybe\n")
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"FAIL config: {cfg}:1: de_dot: expected true or false" in out.stdout


def test_check_config_only_validates_without_contacting_or_writing(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "kubemeta.log"
    cfg = tmp_path / "k.yaml"
    # Port 9 on loopback: nothing listens, so any attempt to reach the API would fail.
    cfg.write_text(f"kubernetes_url: https://127.0.0.1:9\nlog_file: {log}\n")
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config-only", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, f"ok   config {cfg}\n")
    assert not log.parent.exists()
    cfg.write_text("kubernetes_url: https://127.0.0.1:9\nnode_nmae: n1\n")
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config-only", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"FAIL config: {cfg}:2: node_nmae: unknown key" in out.stdout


def test_version_names_each_dependency_for_bug_reports() -> None:
    out = subprocess.run([str(KUBEMETA_BIN), "--version"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.startswith("kubemeta ")
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names == ["Python", "kubernetes", "urllib3", "cachetools", "tenacity", "PyYAML",
                     "orjson", "systemd-python"]


def incompatible_client(tmp: Path) -> dict[str, str]:
    """An environment whose ``kubernetes`` package is a release kubemeta was not made
    for: its kubeconfig loader takes other arguments, as call_api did in 37."""
    pkg = tmp / "site" / "kubernetes"
    (pkg / "config").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "client.py").write_text("class Configuration:\n    pass\n")
    (pkg / "config" / "__init__.py").write_text(
        "class ConfigException(Exception):\n    pass\n\n\n"
        "def load_kube_config(config_file=None, context=None, *, client_config=None):\n"
        "    raise ConfigException('not reached')\n")
    return {"PYTHONPATH": str(tmp / "site"), "PATH": "/usr/bin:/bin"}


def test_an_incompatible_client_library_is_an_internal_error_not_an_outage(
        tmp_path: Path, world: ApiEmulator) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [],
                                  "users": [], "contexts": []}))
    cfg = plain_config(tmp_path, world, kubeconfig=str(kc))
    env = incompatible_client(tmp_path)
    out = subprocess.run([str(KUBEMETA_BIN), "enrich", "--config", str(cfg)],
                         input=line_for("web-1"), capture_output=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)  # answered, with file-name fields
    assert reply["$!"]["kubernetes"]["pod_name"] == "web-1"
    assert "labels" not in reply["$!"]["kubernetes"]
    err = out.stderr.decode()
    assert "CRITICAL internal error in building the API client: TypeError" in err
    assert "client_configuration" in err and "kubernetes " in err  # what and which versions
    assert "unavailable" not in err
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2, out.stdout
    assert "FAIL building the API client: internal error TypeError" in out.stdout
    assert "not an API problem" in out.stdout


def test_enrich_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    cfg = tmp_path / "k.yaml"
    cfg.write_text("kubernetes_url: https://127.0.0.1:9\n")
    out = subprocess.run([str(KUBEMETA_BIN), "enrich", "--config", str(cfg),
                          str(tmp_path / "absent.log")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr == f"kubemeta enrich: cannot read {tmp_path / 'absent.log'}: " \
                         "No such file or directory\n"


def test_enrich_raw_container_lines_as_rsyslog_would_write_them(
        tmp_path: Path, world: ApiEmulator, token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    cid = container_id("shop", "web-1", "app")
    name = f"/var/log/containers/web-1_shop_app-{cid}.log"
    docker = b'{"log":"hello\\n","stream":"stdout","time":"2026-12-04T10:00:00.1Z"}\n'
    cri = b"2026-12-04T10:00:00.2Z stderr F oops\n"
    out = subprocess.run([str(KUBEMETA_BIN), "enrich", "--config", str(cfg), "--raw", name,
                          "--explain"], input=docker + cri + b"not json at all\n",
                         capture_output=True, timeout=60, check=True)
    first, second, third = (json.loads(x) for x in out.stdout.splitlines())
    assert (first["log"], first["stream"]) == ("hello\n", "stdout")
    assert first["kubernetes"]["labels"] == {"app": "web-1"}
    assert first["docker"] == {"container_id": cid}
    assert first["metadata"] == {"filename": name, "fileoffset": "0"}
    assert (second["log"], second["stream"]) == ("oops\n", "stderr")  # CRI, unframed
    assert second["kubernetes"]["pod_name"] == "web-1"
    assert third["kubernetes"]["namespace_name"] == "shop"
    said = out.stderr.decode().splitlines()
    assert said[0] == "kubemeta: line 1: pod shop/web-1, container app: metadata asked of " \
                      "the API for this line"
    assert said[1] == "kubemeta: line 2: pod shop/web-1, container app: metadata from the cache"


def test_enrich_explains_what_a_record_got(tmp_path: Path, world: ApiEmulator,
                                           token_file: Path) -> None:
    cfg = plain_config(tmp_path, world, token_file=str(token_file))
    lines = b"".join(x + b"\n" for x in (
        line_for("ghost"), line_for("ghost"), fulljson("/var/log/elsewhere/x.log")))
    out = subprocess.run([str(KUBEMETA_BIN), "enrich", "--config", str(cfg), "--explain"],
                         input=lines, capture_output=True, timeout=60, check=True)
    said = out.stderr.decode().splitlines()
    assert said[0] == "kubemeta: line 1: pod shop/ghost, container app: file-name fields " \
                      "only: the API says it does not exist"
    assert said[1].endswith("the API said it does not exist (remembered for not_found_ttl)")
    assert said[2].startswith("kubemeta: line 3: no pod named: the file name matches none")
