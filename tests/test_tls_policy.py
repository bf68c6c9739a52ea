"""TLS is never silently weaker than kubemeta's own settings: plain http is
refused unless allowed, and then carries no credentials; a kubeconfig that
turns verification off does not override kubemeta's CA, and is warned about."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiemulator import ApiEmulator
from apiemulator.pki import make_pki
from kubemeta import config
from kubemeta.app import App
from kubemeta.errors import ApiNotFound, ApiUnreachable, ConfigError

from conftest import TOKEN


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        Recorder.seen.append(dict(self.headers))
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "code": 404,
                           "message": "not found"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def plain_http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        config.Config(kubernetes_url="http://127.0.0.1:8080", token=TOKEN)


def test_plain_http_when_allowed_carries_no_credentials(plain_http: str) -> None:
    cfg = config.Config(kubernetes_url=plain_http, token="a-token-for-https-only",
                        allow_insecure_http=True)
    with pytest.raises(ApiNotFound):
        App(cfg).api().get_namespace("default")
    assert Recorder.seen and all("Authorization" not in h for h in Recorder.seen)


def kubeconfig(tmp_path: Path, emu: ApiEmulator) -> Path:
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {"server": emu.url,
                                                 "insecure-skip-tls-verify": True}}],
        "users": [{"name": "kubemeta", "user": {"token": TOKEN}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "kubemeta"}}]}))
    return kc


def test_a_kubeconfig_does_not_turn_off_verification_against_kubemetas_ca(
        tmp_path: Path, emulator: ApiEmulator) -> None:
    foreign = make_pki(str(tmp_path / "foreign"))  # a CA that did not sign the API's cert
    cfg = config.Config(kubeconfig=str(kubeconfig(tmp_path, emulator)), ca_file=foreign.ca_file)
    with pytest.raises(ApiUnreachable, match="TLS error"):
        App(cfg).api().get_namespace("default")


def test_a_kubeconfig_that_turns_verification_off_is_warned_about(
        tmp_path: Path, emulator: ApiEmulator, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config.Config(kubeconfig=str(kubeconfig(tmp_path, emulator)))
    with caplog.at_level(logging.WARNING, "kubemeta"):
        api = App(cfg).api()
        with pytest.raises(ApiNotFound):  # it works, as the kubeconfig asks
            api.get_namespace("nope")
    assert api.warnings and "turns TLS verification off" in api.warnings[0]
    assert "turns TLS verification off" in caplog.text


def test_keys_embedded_in_a_kubeconfig_are_never_left_on_disk(
        tmp_path: Path, emulator: ApiEmulator) -> None:
    import base64
    import os
    import tempfile

    key = Path(emulator.pki.client_key).read_bytes()
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {
            "server": emulator.url, "certificate-authority-data":
                base64.b64encode(Path(emulator.pki.ca_file).read_bytes()).decode()}}],
        "users": [{"name": "kubemeta", "user": {
            "client-certificate-data":
                base64.b64encode(Path(emulator.pki.client_cert).read_bytes()).decode(),
            "client-key-data": base64.b64encode(key).decode()}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "kubemeta"}}]}))
    api = App(config.Config(kubeconfig=str(kc))).api()
    with pytest.raises(ApiNotFound):  # authenticated by the embedded certificate
        api.get_namespace("nope")
    tmp = tempfile.gettempdir()
    holding = []
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        try:
            if os.path.isfile(path) and key in Path(path).read_bytes():
                holding.append(path)
        except OSError:
            continue
    assert holding == []
