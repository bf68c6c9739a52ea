"""state_dir is trusted only when it is this user's alone; what is read from it
cannot put rsyslog's pipe out of step."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest

from kubemeta import files, jsonlib, roles
from kubemeta.app import App
from kubemeta.config import Config
from kubemeta.kinds import Role
from kubemeta.model.identify import Identifier
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.share.sharedview import View, ViewSlot, encode
from kubemeta.shell.enricher import Enricher
from kubemeta.wire.record import RecordReader

from fakes import FakeFetcher, make_store

ROOT = os.geteuid() == 0


def test_a_missing_state_dir_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state"
    assert files.private_dir(str(path)) is None
    assert path.is_dir() and path.stat().st_mode & 0o777 == 0o750


def test_a_state_dir_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(0o777)
    assert "others may write to it" in (files.private_dir(str(path)) or "")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert "symbolic link" in (files.private_dir(str(link)) or "")


@pytest.mark.skipif(not ROOT, reason="needs root to give a file to another user")
def test_a_state_dir_or_file_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o750)
    os.chown(path, 65534, 65534)
    assert "another user" in (files.private_dir(str(path)) or "")
    planted = tmp_path / "shared.view"
    planted.write_bytes(b"x")
    os.chown(planted, 65534, 65534)
    with pytest.raises(PermissionError, match="not trusted"):
        files.open_private(str(planted))


def test_files_in_state_dir_are_never_read_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"{}")
    (tmp_path / "snapshot.json").symlink_to(target)
    with pytest.raises(OSError):
        files.open_private(str(tmp_path / "snapshot.json"))
    group_writable = tmp_path / "g"
    group_writable.write_bytes(b"{}")
    group_writable.chmod(0o660)
    with pytest.raises(PermissionError):
        files.open_private(str(group_writable))


def test_with_an_unsafe_state_dir_a_helper_works_alone_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    app = App(Config(kubernetes_url="https://127.0.0.1:1", state_dir=str(state), source="get"))
    with caplog.at_level(logging.WARNING, "kubemeta"):
        helper = roles.start(app)
    try:
        assert helper.role is Role.ALONE and helper.keeper is None
        assert caplog.text.count("is not safe to trust") == 1
        assert os.listdir(state) == []  # nothing read or written there
    finally:
        helper.store.stop()


def test_each_group_has_a_snapshot_of_its_own_and_the_dir_is_made(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def snapshot_path(node: str) -> str:
        app = App(Config(kubernetes_url="https://api:6443", node_name=node,
                         state_dir=str(state), share_helpers=False))
        keeper = app.keeper(app.store())
        assert keeper is not None
        return keeper.path

    assert snapshot_path("node-1") != snapshot_path("node-2")
    assert state.is_dir()  # share_helpers off: made all the same, for the snapshot


def test_a_view_that_would_make_two_lines_of_a_reply_is_not_served() -> None:
    pod = PodMeta("uid-1", {"app": "XXXX"}, None, "node-1")
    data = encode([(("shop", "web-1"), pod, math.inf)],
                  [("shop", NamespaceMeta("ns-uid", None, None, None), math.inf)], [], 0.0,
                  jsonlib.dumps)
    assert data.count(b"XXXX") == 1
    slot = ViewSlot()
    slot.view = View(data.replace(b"XXXX", b"X\nXX"))  # planted: same lengths, a newline
    store = make_store(FakeFetcher({("shop", "web-1"): pod}, {}), lambda: 0.0)
    try:
        reader = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL")
        ident = Identifier(
            [r"^/var/log/containers/(?P<pod_name>[^_]+)_(?P<namespace_name>[^_]+)_"
             r"(?P<container_name>[^.]+)-(?P<container_id>[^.-]+)\.log$"], [])
        enricher = Enricher(reader, ident, store, "https://api:6443", 5.0, shared=slot)
        name = "/var/log/containers/web-1_shop_app-" + "a" * 64 + ".log"
        line = json.dumps({"msg": "m", "$!": {"metadata": {"filename": name}}}).encode()
        reply = enricher.reply(line)
        assert reply.count(b"\n") == 1 and reply.endswith(b"\n")
        assert slot.view is None  # dropped: the store serves from now on
    finally:
        store.stop()
