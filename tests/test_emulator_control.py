"""The emulator as devel/README.md tells a developer to run it: a process
loaded with the sample fixture, driven through its control port, answering
kubemeta's own requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubemeta import config
from kubemeta.app import App
from kubemeta.errors import ApiForbidden, ApiUnreachable

from harness import REPO

FIXTURE = REPO / "devel" / "fixtures" / "sample-cluster.json"


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "devel")}
    proc = subprocess.Popen([sys.executable, "-m", "apiemulator", "--dir", str(tmp_path),
                             "--fixtures", str(FIXTURE)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    info = tmp_path / "emulator.json"
    deadline = time.monotonic() + 60
    try:
        while not info.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.05)
        yield json.loads(info.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def control(info: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(info["control_url"] + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_the_documented_control_port(emulator_process: dict[str, Any]) -> None:
    info = emulator_process
    objects = control(info, "GET", "/objects")
    assert sorted(p["metadata"]["name"] for p in objects["pods"]) == [
        "elsewhere-0", "etl-0", "web-7d9f8-abcde"]
    assert all(p["metadata"]["uid"] for p in objects["pods"])  # filled in
    cfg = config.Config(kubernetes_url=info["url"], ca_file=info["ca_file"],
                        token_file=info["token_file"])
    api = App(cfg).api()
    assert api.get_pod("shop", "web-7d9f8-abcde")["metadata"]["labels"][
        "app.kubernetes.io/name"] == "web"
    assert {p["metadata"]["name"] for p in api.list_pods("node-1")} == {
        "etl-0", "web-7d9f8-abcde"}  # not the pod on node-2
    control(info, "POST", "/faults", {"action": "status", "status": 403, "times": 1})
    with pytest.raises(ApiForbidden):
        api.get_namespace("shop")
    assert api.get_namespace("shop")["metadata"]["labels"]["team"] == "checkout"
    control(info, "POST", "/phase", {"phase": "refused"})
    with pytest.raises(ApiUnreachable, match="refused"):
        App(cfg).api().get_namespace("shop")
    control(info, "POST", "/phase", {"phase": "ok"})
    control(info, "DELETE", "/objects/namespaces/data/pods/etl-0")
    assert {p["metadata"]["name"] for p in api.list_pods("node-1")} == {"web-7d9f8-abcde"}
    counts = control(info, "GET", "/requests")
    assert counts["by_status"]["403"] == 1 and counts["total"] >= 5
    with pytest.raises(urllib.error.HTTPError) as e:
        control(info, "POST", "/faults", {"action": "explode"})
    assert e.value.code == 400
