"""The helper as a real process on real pipes, wired as rsyslog wires it."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.objects import container_id

from harness import KUBEMETA_BIN, Helper, fulljson, kubemeta_config


@pytest.fixture
def world(emulator: ApiEmulator) -> ApiEmulator:
    emulator.world.apply(make_namespace("shop", {"team": "checkout"}))
    emulator.world.apply(make_pod("shop", "web-1", {"app.kubernetes.io/name": "web"}))
    return emulator


def log_path(tmp: Path, ns: str = "shop", pod: str = "web-1", cont: str = "app") -> str:
    return f"{tmp / 'containers'}/{pod}_{ns}_{cont}-{container_id(ns, pod, cont)}.log"


@pytest.fixture
def helper(tmp_path: Path, world: ApiEmulator, token_file: Path) -> Iterator[Helper]:
    cfg = kubemeta_config(tmp_path, world, token_file, lookup_deadline=10,
                          max_line_bytes=1024 * 1024)
    h = Helper("--config", str(cfg))
    yield h
    h.kill()


def reply(h: Helper, line: bytes) -> dict[str, object]:
    out = h.ask(line)
    obj = json.loads(out)
    assert isinstance(obj, dict), out
    return obj


def test_enriches_a_known_pod(tmp_path: Path, helper: Helper) -> None:
    out = reply(helper, fulljson(log_path(tmp_path), log="hello\n"))
    k = out["$!"]["kubernetes"]  # type: ignore[index]
    assert k["labels"] == {"app_kubernetes_io/name": "web"}
    assert k["namespace_labels"]["team"] == "checkout"
    assert out["$!"]["docker"]["container_id"] == container_id("shop", "web-1", "app")  # type: ignore[index]
    assert helper.close() == 0
    assert helper.extra_output() == b""


HOSTILE = [
    b"",
    b"not json at all",
    b"\xff\xfe\xfd invalid utf-8 \x80\x81",
    b'{"msg": "nul \x00 inside"}',
    b"\x00\x00\x00",
    b"[1, 2, 3]",
    b"null",
    b'"just a string"',
    b'{"$!": "not an object"}',
    b'{"$!": {"metadata": {"filename": 12345}}}',
    b'{"$!": {"metadata": {"filename": ["a", "b"]}}}',
    b'{"$!": {"metadata": {"filename": "\\/var\\/log\\/syslog"}}}',
    b'{"$!": {"metadata": {"filename": "\\ud800"}}}',
    b"[" * 200000 + b"]" * 200000,
    b'{"truncated": "yes',
    b'{"$!": {"metadata": {"filename": "' + b"A" * (2 * 1024 * 1024) + b'"}}}',
]


def test_hostile_input_gets_one_wellformed_reply_each(tmp_path: Path, helper: Helper) -> None:
    for line in HOSTILE:
        assert reply(helper, line) == {}, line[:60]
    # Still in step and still enriching.
    out = reply(helper, fulljson(log_path(tmp_path)))
    assert out["$!"]["kubernetes"]["labels"]  # type: ignore[index]
    assert helper.proc.poll() is None
    assert helper.close() == 0
    assert helper.extra_output() == b""
    log = (tmp_path / "kubemeta.log").read_text()
    assert "unreadable record from rsyslog" in log
    assert "longer than max_line_bytes" in log


def test_embedded_newlines_and_many_lines(tmp_path: Path, helper: Helper) -> None:
    assert helper.proc.stdin is not None
    for i in range(200):
        helper.proc.stdin.write(fulljson(log_path(tmp_path), log=f"multi\nline\r\n{i}\n")
                                + b"\n")
        helper.proc.stdin.flush()
        assert json.loads(helper.read_line())["$!"]["kubernetes"]["pod_name"] == "web-1"
    # mmexternal waits for each reply before it sends the next line; lines sent
    # together mean it gave up on all but the last (see test_pipeserver).
    lines = [fulljson(log_path(tmp_path), log=f"{i}\n") for i in range(5)]
    helper.proc.stdin.write(b"\n".join(lines) + b"\n")
    helper.proc.stdin.flush()
    assert json.loads(helper.read_line())["$!"]["kubernetes"]["pod_name"] == "web-1"
    assert helper.close() == 0
    assert helper.extra_output() == b""


def test_unknown_file_and_unknown_pod(tmp_path: Path, helper: Helper) -> None:
    assert reply(helper, fulljson("/var/log/syslog")) == {}
    assert reply(helper, fulljson(None)) == {}
    out = reply(helper, fulljson(log_path(tmp_path, pod="ghost")))
    assert out["$!"]["kubernetes"] == {  # type: ignore[index]
        "namespace_id": out["$!"]["kubernetes"]["namespace_id"],  # type: ignore[index]
        "namespace_labels": {"kubernetes_io/metadata_name": "shop", "team": "checkout"},
        "creation_timestamp": out["$!"]["kubernetes"]["creation_timestamp"],  # type: ignore[index]
        "pod_name": "ghost", "namespace_name": "shop", "container_name": "app",
        "master_url": helper_url(tmp_path)}


def helper_url(tmp: Path) -> str:
    import yaml

    return str(yaml.safe_load((tmp / "kubemeta.yaml").read_text())["kubernetes_url"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_cleanly(tmp_path: Path, helper: Helper, sig: signal.Signals) -> None:
    reply(helper, fulljson(log_path(tmp_path)))
    helper.proc.send_signal(sig)
    assert helper.proc.wait(10) == 0
    assert helper.extra_output() == b""
    assert "stopping (signal)" in (tmp_path / "kubemeta.log").read_text()


def test_api_down_still_answers_with_file_name_fields(tmp_path: Path, token_file: Path,
                                                      emulator: ApiEmulator) -> None:
    emulator.stop_listening()
    cfg = kubemeta_config(tmp_path, emulator, token_file)  # default deadline
    h = Helper("--config", str(cfg))
    try:
        start = time.monotonic()
        for _ in range(20):
            out = reply(h, fulljson(log_path(tmp_path)))
            assert out["$!"]["kubernetes"]["pod_name"] == "web-1"  # type: ignore[index]
            assert "labels" not in out["$!"]["kubernetes"]  # type: ignore[index]
        # 20 lines cannot each have waited the deadline: the API is known down.
        assert time.monotonic() - start < 20 * 0.25
        assert h.close() == 0
    finally:
        h.kill()
    log = (tmp_path / "kubemeta.log").read_text()
    assert log.count("Kubernetes API unavailable: connection refused") == 1


def test_broken_config_keeps_logs_flowing(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(f"log_file: {tmp_path / 'k.log'}\nkubernetes_ur: https://typo\n")
    h = Helper("--config", str(cfg))
    try:
        path = f"/var/log/containers/web-1_shop_app-{'a' * 64}.log"
        out = reply(h, fulljson(path))
        assert out["$!"]["kubernetes"]["pod_name"] == "web-1"  # type: ignore[index]
        assert out["$!"]["docker"] == {"container_id": "a" * 64}  # type: ignore[index]
        assert h.close() == 0
        assert h.extra_output() == b""
    finally:
        h.kill()
    log = (tmp_path / "k.log").read_text()
    assert f"CRITICAL configuration error: {cfg}:2: kubernetes_ur: unknown key" in log


def test_a_broken_config_keeps_its_valid_values(tmp_path: Path, token_file: Path,
                                                world: ApiEmulator) -> None:
    # The API's address, its credentials and the metrics file are good; one key
    # has a typo. The helper must go on with the good ones, not the defaults.
    prom = tmp_path / "kubemeta.prom"
    cfg = kubemeta_config(tmp_path, world, token_file, prometheus_file=str(prom),
                          stats_interval=3600, lookup_deadline=10)
    with cfg.open("a") as f:
        f.write("pod_cache_tl: 60\n")
    h = Helper("--config", str(cfg))
    try:
        out = reply(h, fulljson(log_path(tmp_path)))
        assert out["$!"]["kubernetes"]["labels"] == {  # type: ignore[index]
            "app_kubernetes_io/name": "web"}
        assert h.close() == 0
    finally:
        h.kill()
    log = (tmp_path / "kubemeta.log").read_text()
    assert "pod_cache_tl: unknown key (did you mean pod_cache_ttl?); kubemeta goes on with " \
           "the file's valid values" in log
    assert "\nkubemeta_configproblems 1\n" in prom.read_text()


@pytest.mark.parametrize(("flags", "logged"), [
    ((), "cannot read config file"),
    # argparse would print its usage on fd 2, rsyslog's pipe, and exit.
    (("--bogus",), "unrecognized arguments: --bogus"),
], ids=["missing config file", "unknown flag"])
def test_missing_config_file_or_unknown_flag_keeps_logs_flowing(
        tmp_path: Path, flags: tuple[str, ...], logged: str) -> None:
    h = Helper("--config", str(tmp_path / "absent.yaml"), *flags,
               "--log-file", str(tmp_path / "x.log"))
    try:
        assert reply(h, b"{}") == {}
        assert h.close() == 0
        assert h.extra_output() == b""
    finally:
        h.kill()
    assert logged in (tmp_path / "x.log").read_text()


def test_console_script_is_absolute_and_needs_no_environment() -> None:
    assert KUBEMETA_BIN.is_absolute() and KUBEMETA_BIN.exists()


def test_api_that_never_answers_costs_one_deadline(tmp_path: Path, token_file: Path,
                                                   world: ApiEmulator) -> None:
    from apiemulator.server import Fault

    world.add_fault(Fault("hang", path="/api/v1/namespaces"))
    # A long deadline, so that the margin below covers a loaded machine's delays.
    cfg = kubemeta_config(tmp_path, world, token_file, lookup_deadline=3.0,
                          api_read_timeout=60)
    h = Helper("--config", str(cfg))
    try:
        start = time.monotonic()
        for pod in ("web-1", "a", "b", "c", "d", "e", "f", "g", "h", "i"):
            out = reply(h, fulljson(log_path(tmp_path, pod=pod)))
            assert out["$!"]["kubernetes"]["pod_name"] == pod  # type: ignore[index]
        # Ten new pods, but only the first line paid the deadline (ten would cost 30 s).
        assert time.monotonic() - start < 2 * 3.0
        world.clear_faults()
        assert h.close() == 0
        assert h.extra_output() == b""
    finally:
        h.kill()


def test_journald_container_name(tmp_path: Path, helper: Helper, world: ApiEmulator) -> None:
    uid = world.world.pods[("shop", "web-1")]["metadata"]["uid"]
    out = reply(helper, fulljson(None, CONTAINER_NAME=f"k8s_app.1a2b_web-1_shop_{uid}_0",
                                 CONTAINER_ID_FULL="f" * 64))
    assert out["$!"]["kubernetes"]["labels"] == {"app_kubernetes_io/name": "web"}  # type: ignore[index]
    assert out["$!"]["docker"] == {"container_id": "f" * 64}  # type: ignore[index]
    # The same name with another uid is an earlier pod: its lines get no borrowed labels.
    out = reply(helper, fulljson(None, CONTAINER_NAME="k8s_app_web-1_shop_old-uid_3",
                                 CONTAINER_ID_FULL="e" * 64))
    k = out["$!"]["kubernetes"]  # type: ignore[index]
    assert "labels" not in k and k["pod_id"] == "old-uid" and k["pod_name"] == "web-1"
