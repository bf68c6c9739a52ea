"""Helpers sharing one view: the messages, and a leader and followers on real
sockets and a real lock, with a source that counts what reaches the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kubemeta import sharing
from kubemeta.errors import ApiNotFound, ApiUnreachable
from kubemeta.identify import PodRef
from kubemeta.schema import NamespaceMeta, PodMeta
from kubemeta.sharedproto import (
    Answer,
    Group,
    MessageError,
    Request,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)
from kubemeta.store import MetadataStore, StoreSettings

from fakes import FakeSource

IDENT = {"kubernetes_url": "https://api", "node_name": "node-1", "shape": [True, "_", [], []]}
WEB = PodMeta("uid-web", {"app": "web"}, None, "node-1", ("cid-web",))
SHOP = NamespaceMeta("uid-shop", {"team": "a"}, None, "2026-01-01T00:00:00Z")


def test_messages_round_trip_and_nonsense_is_refused() -> None:
    r = Request(7, "pod", "shop", "web-1")
    assert decode_request(encode_request(r)) == r
    a = Answer(7, "ok", {"uid": "u"})
    assert decode_answer(encode_answer(a)) == a
    assert decode_answer(encode_answer(Answer(8, "missing"))).status == "missing"
    for bad in (b"", b"[]", b"{", b'{"id": 1, "kind": "delete", "ns": "", "name": ""}',
                b'{"id": "1", "kind": "pod", "ns": "", "name": ""}', b"\xff" * 10):
        with pytest.raises(MessageError):
            decode_request(bad)
    for bad in (b'{"id": 1, "status": "ok", "meta": null, "reason": ""}',
                b'{"id": 1, "status": "missing", "meta": {}, "reason": ""}',
                b'{"id": 1, "status": "maybe", "meta": null, "reason": ""}'):
        with pytest.raises(MessageError):
            decode_answer(bad)


def test_an_answer_too_large_for_a_datagram_says_so() -> None:
    huge = Answer(3, "ok", {"labels": {"x": "y" * 300_000}})
    got = decode_answer(encode_answer(huge))
    assert (got.id, got.status) == (3, "unavailable")


def test_a_group_is_one_state_dir_and_one_setup(tmp_path: Path) -> None:
    g = Group.of(str(tmp_path), IDENT)
    assert g == Group.of(str(tmp_path), dict(IDENT))
    assert g != Group.of(str(tmp_path / "other"), IDENT)
    assert g != Group.of(str(tmp_path), {**IDENT, "node_name": "node-2"})
    assert g.address.startswith("\0") and os.path.dirname(g.lock_path) == str(tmp_path)


class Node:
    """A leader's store over a counting source, and the group it leads."""

    def __init__(self, tmp: Path) -> None:
        self.group = Group.of(str(tmp / "state"), IDENT)
        self.source = FakeSource({("shop", "web-1"): WEB}, {"shop": SHOP})
        self.store = MetadataStore(lambda: self.source, clock=time.monotonic,
                                   settings=StoreSettings())
        self.store.start()
        self.fd = sharing.open_lock(self.group)
        assert sharing.try_lead(self.fd)
        self.leading = sharing.Leading(self.group, self.store, IDENT, wait=5.0)
        self.leading.start()

    def follower(self, on_lead: threading.Event | None = None
                 ) -> tuple[MetadataStore, sharing.Following, sharing.RoleSource]:
        client = sharing.LeaderClient(self.group, timeout=5.0)
        role = sharing.RoleSource(client)
        store = MetadataStore(lambda: role, clock=time.monotonic, settings=StoreSettings())
        store.start()
        fd = sharing.open_lock(self.group)
        assert not sharing.try_lead(fd)
        following = sharing.Following(self.group, store, IDENT, client, fd,
                                      on_lead.set if on_lead else lambda: None)
        return store, following, role

    def close(self) -> None:
        self.store.stop()
        os.close(self.fd)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    n = Node(tmp_path)
    yield n  # type: ignore[misc]
    n.close()


REF = PodRef("shop", "web-1", "app", None, None)


def test_followers_ask_the_leader_and_the_api_sees_one_request_per_object(node: Node) -> None:
    followers = [node.follower()[0] for _ in range(3)]
    for store in followers:
        pe, ne = store.lookup(REF, time.monotonic() + 5)
        assert pe is not None and pe.value == WEB
        assert ne is not None and ne.value == SHOP
    assert sorted(node.source.calls) == [("ns", "shop"), ("pod", ("shop", "web-1"))]


def test_what_the_api_does_not_have_is_missing_for_followers_too(node: Node) -> None:
    store, _, role = node.follower()
    with pytest.raises(ApiNotFound):
        role.pod("shop", "nope")
    pe, _ = store.lookup(PodRef("shop", "nope", "app", None, None), time.monotonic() + 5)
    assert pe is not None and pe.value is None  # cached as not found


def test_followers_load_what_the_leader_publishes_without_asking(node: Node) -> None:
    node.store.put_watched("pod", ("shop", "web-1"), WEB)
    node.store.put_watched("ns", "shop", SHOP)
    store, following, _ = node.follower()
    following.start()  # says hello: the leader publishes
    deadline = time.monotonic() + 10
    while following.loads == 0:
        assert time.monotonic() < deadline, "nothing was published"
        time.sleep(0.05)
    pe, ne = store.lookup(REF, time.monotonic())  # no wait at all
    assert pe is not None and pe.value == WEB and pe.fresh_until == float("inf")
    assert ne is not None and ne.value == SHOP
    assert node.source.calls == []
    # A change reaches the follower; a deletion too (kept for its last lines).
    relabelled = PodMeta("uid-web", {"app": "web", "v": "2"}, None, "node-1", ("cid-web",))
    node.store.put_watched("pod", ("shop", "web-1"), relabelled)
    while store.lookup(REF, time.monotonic())[0].value != relabelled:  # type: ignore[union-attr]
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)
    node.store.forget_watched("pod", ("shop", "web-1"))
    gone = PodRef("shop", "web-1", "app", "cid-web", None)
    while ("shop", "web-1") in dict(store.export(0)[0]):
        assert time.monotonic() < deadline + 20
        time.sleep(0.05)
    assert store.lookup(gone, time.monotonic())[0].value == relabelled  # type: ignore[union-attr]


def test_without_a_leader_a_follower_waits_a_moment_then_is_told(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path), IDENT)
    client = sharing.LeaderClient(group, timeout=5.0)
    t0 = time.monotonic()
    with pytest.raises(ApiUnreachable, match="no leader"):
        client.pod("shop", "web-1")
    assert client.SEND_PATIENCE <= time.monotonic() - t0 < client.SEND_PATIENCE + 1.0


def test_a_leader_that_opens_its_socket_late_is_still_asked(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path / "state"), IDENT)
    client = sharing.LeaderClient(group, timeout=5.0)
    got: list[PodMeta] = []
    asking = threading.Thread(target=lambda: got.append(client.pod("shop", "web-1")))
    asking.start()
    time.sleep(0.5)  # the leader holds the lock, and is not listening yet
    n = Node(tmp_path)
    try:
        asking.join(10)
        assert got == [WEB]
    finally:
        n.close()


def test_a_follower_takes_the_lead_when_the_leader_lets_go(node: Node) -> None:
    took = threading.Event()
    _, following, _ = node.follower(took)
    following.start()
    assert not took.wait(0.5)
    os.close(node.fd)  # what the kernel does when the leader dies
    node.fd = os.open(os.devnull, os.O_RDONLY)
    assert took.wait(5)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to send as another user")
def test_datagrams_from_another_user_are_ignored(node: Node) -> None:
    prog = ("import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
            "s.bind(''); "  # answerable, were it accepted
            f"s.sendto(b'{{\"id\": 1, \"kind\": \"pod\", \"ns\": \"shop\", \"name\": \"web-1\"}}', "
            f"{node.group.address!r})")
    subprocess.run([sys.executable, "-c", prog], user="nobody", check=True, timeout=30)
    own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    own.bind("")
    own.sendto(encode_request(Request(2, "pod", "shop", "web-1")), node.group.address)
    own.settimeout(5)
    assert decode_answer(own.recv(1 << 20)).id == 2
    deadline = time.monotonic() + 5
    while node.leading.answered < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    assert node.leading.answered == 1  # ours; nobody's was dropped unanswered
