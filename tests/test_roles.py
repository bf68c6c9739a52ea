"""Which part a helper plays: a follower that takes the lock must lead."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from apiemulator import ApiEmulator, make_namespace, make_pod
from kubemeta import roles
from kubemeta.app import App
from kubemeta.config import Config
from kubemeta.kinds import Role
from kubemeta.model.identify import PodRef
from kubemeta.share import transport

from conftest import TOKEN


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_takeover_that_cannot_build_its_client_yet_tries_again_and_leads(
        tmp_path: Path, emulator: ApiEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    kubeconfig = tmp_path / "kubeconfig"  # not there yet when the lead is taken
    cfg = Config(kubeconfig=str(kubeconfig), state_dir=str(tmp_path / "state"), source="get",
                 snapshot_interval=0, retry_initial=0.05, retry_max=0.2, retry_jitter=0.0)
    app = App(cfg)
    group = app.group()
    os.makedirs(os.path.dirname(group.lock_path), mode=0o750)
    leader_fd = transport.open_lock(group)
    assert transport.try_lead(leader_fd)  # a leader, as far as the helper can tell
    helper = roles.start(app)
    try:
        assert helper.role is Role.FOLLOWER
        with caplog.at_level(logging.ERROR, "kubemeta"):
            os.close(leader_fd)  # the leader dies
            wait_until(lambda: "cannot use the Kubernetes API yet" in caplog.text,
                       "the takeover did not try to build its client")
        assert helper.role is Role.FOLLOWER  # holding the lock, not yet able to lead
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emu",
            "clusters": [{"name": "emu", "cluster": {
                "server": emulator.url, "certificate-authority": emulator.pki.ca_file}}],
            "users": [{"name": "kubemeta", "user": {"token": TOKEN}}],
            "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "kubemeta"}}]}))
        wait_until(lambda: helper.role is Role.LEADER, "the helper never led")
        ref = PodRef("shop", "web-1", "app", None, None)
        pe, _ = helper.store.lookup(ref, time.monotonic() + 10)
        assert pe is not None and pe.value is not None and pe.value.labels == {"app": "web"}
        assert caplog.text.count("cannot use the Kubernetes API yet") == 1
    finally:
        helper.store.stop()
