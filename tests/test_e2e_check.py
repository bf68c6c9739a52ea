"""`kubemeta check` as an operator runs it: each misconfiguration named with its
own message and exit code, one deadline whatever the API does."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.server import Fault
from kubemeta.text import REDACTED

from harness import KUBEMETA_BIN, kubemeta_config


@pytest.fixture
def world(emulator: ApiEmulator) -> ApiEmulator:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    return emulator


def config(tmp: Path, emu: ApiEmulator, tokens: Path | None, **kw: Any) -> Path:
    cfg = kubemeta_config(tmp, emu, tokens)
    data = yaml.safe_load(cfg.read_text())
    data.update(kw)
    cfg.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return cfg


def check(cfg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # The bound is for a check that would hang: check's own deadline is 15 s.
    return subprocess.run([str(KUBEMETA_BIN), "check", "--config", str(cfg), *extra],
                          capture_output=True, text=True, timeout=120)


def test_a_hanging_api_is_given_up_at_checks_deadline(tmp_path: Path, world: ApiEmulator,
                                                      token_file: Path) -> None:
    world.add_fault(Fault("hang", seconds=600))
    # Each request alone could wait 5 minutes; there are six of them.
    cfg = config(tmp_path, world, token_file, node_name="node-1", api_read_timeout=300)
    out = check(cfg, "--timeout", "2")
    assert out.returncode == 1, out.stdout
    assert "FAIL get namespace default at" in out.stdout
    assert "no answer within check's deadline of 2 s (--timeout)" in out.stdout
    assert "skip watch namespaces at" in out.stdout


@pytest.mark.parametrize("key", ["token_file", "ca_file"])
def test_a_file_that_is_not_there_is_named(tmp_path: Path, world: ApiEmulator,
                                           token_file: Path, key: str) -> None:
    missing = tmp_path / "typo" / "file"
    cfg = config(tmp_path, world, token_file, **{key: str(missing)})
    out = check(cfg)
    assert out.returncode == 2, out.stdout
    assert f"FAIL {key} {missing}: cannot read it: No such file or directory" in out.stdout
    assert "skip the API: fix the configuration first" in out.stdout
    assert world.world.total == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")
def test_a_file_the_helpers_user_cannot_read_is_named(tmp_path: Path, world: ApiEmulator,
                                                      token_file: Path) -> None:
    # pytest's own temporary directories are root's alone: nobody could read nothing.
    with tempfile.TemporaryDirectory() as where:
        os.chmod(where, 0o755)
        secret = Path(where) / "token"
        secret.write_text(token_file.read_text())
        secret.chmod(0o600)  # root's alone
        cfg = config(tmp_path, world, None, token_file=str(secret),
                     ca_file=None)  # the CA, under pytest's directory, is checked by the API
        out = check(cfg, "--user", "nobody")
        assert out.returncode == 2, out.stdout
        assert f"FAIL token_file {secret}: cannot read it as nobody: Permission denied" \
            in out.stdout
        secret.chmod(0o644)
        out = check(cfg, "--user", "nobody")
        assert f"ok   token_file {secret} readable as nobody" in out.stdout


def test_a_wrong_node_name_is_warned_about(tmp_path: Path, world: ApiEmulator,
                                           token_file: Path) -> None:
    out = check(config(tmp_path, world, token_file, node_name="node-1"))
    assert "ok   list pods on node node-1 at" in out.stdout and "(1 pods)" in out.stdout
    assert "\nwarn " not in out.stdout
    out = check(config(tmp_path, world, token_file, node_name="web-host-1"))
    assert out.returncode == 0, out.stdout
    assert "warn 0 pods on node web-host-1 is node_name this node's name in Kubernetes" \
        in out.stdout


def test_no_node_name_is_warned_about(tmp_path: Path, world: ApiEmulator,
                                      token_file: Path) -> None:
    out = check(config(tmp_path, world, token_file))
    assert out.returncode == 0, out.stdout
    assert "warn node_name is not set every new pod costs API requests" in out.stdout


def test_an_unusable_state_dir_fails(tmp_path: Path, world: ApiEmulator,
                                     token_file: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = check(config(tmp_path, world, token_file, state_dir=str(blocker / "state")))
    assert out.returncode == 2, out.stdout
    assert f"FAIL state_dir {blocker / 'state'}: not a writable directory" in out.stdout


def test_print_config_shows_what_runs_without_secrets(tmp_path: Path, world: ApiEmulator) -> None:
    cfg = config(tmp_path, world, None, token="s3cret-token-value", lookup_deadline=2)
    out = check(cfg, "--print-config", "--pod-cache-ttl", "60")
    assert out.returncode == 0, out.stdout
    shown = yaml.safe_load(out.stdout.split("\n", 1)[1])
    assert shown["lookup_deadline"] == 2 and shown["pod_cache_ttl"] == 60
    assert shown["kubernetes_url"] == world.url and shown["not_found_ttl"] == 30
    assert "s3cret-token-value" not in out.stdout and shown["token"] == REDACTED
    assert world.world.total == 0


def test_json_results_for_tools(tmp_path: Path, world: ApiEmulator, token_file: Path) -> None:
    out = check(config(tmp_path, world, token_file, node_name="node-1"), "--json")
    doc = json.loads(out.stdout)
    assert doc["exit"] == out.returncode == 0
    assert [c["result"] for c in doc["checks"]] == ["ok"] * len(doc["checks"])
    assert any(c["check"].startswith("watch namespaces") for c in doc["checks"])
