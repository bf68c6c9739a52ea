"""Helpers sharing one view: the messages, and a leader and followers on real
sockets and a real lock, with a source that counts what reaches the API."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kubemeta import config, jsonlib, roles
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import SYSTEM
from kubemeta.errors import ApiNotFound, ApiUnreachable
from kubemeta.model.identify import Identifier, PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.share import transport
from kubemeta.share.following import Following, LeaderClient, RoleFetcher
from kubemeta.share.leading import Leading
from kubemeta.share.sharedview import View, ViewError, ViewSlot, encode
from kubemeta.shell.enricher import Enricher
from kubemeta.state import snapshot
from kubemeta.wire.record import RecordReader
from kubemeta.wire.sharedproto import (
    Answer,
    Group,
    MessageError,
    Request,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)

from fakes import FakeClock, FakeFetcher, make_store, store_settings

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
    # The socket is a file in state_dir: no other user can take its name.
    assert os.path.dirname(g.address) == os.path.dirname(g.lock_path) == str(tmp_path)


class Node:
    """A leader's store over a counting source, and the group it leads."""

    def __init__(self, tmp: Path) -> None:
        self.group = Group.of(str(tmp / "state"), IDENT)
        self.source = FakeFetcher({("shop", "web-1"): WEB}, {"shop": SHOP})
        self.store = make_store(self.source, SYSTEM)
        self.fd = transport.open_lock(self.group)
        assert transport.try_lead(self.fd)
        self.leading = Leading(self.group, self.store, wait=5.0)
        self.leading.start()

    def follower(self, on_lead: threading.Event | None = None, max_age: float = 60.0
                 ) -> tuple[MetadataStore, Following, RoleFetcher]:
        client = LeaderClient(self.group, timeout=5.0)
        role = RoleFetcher(client)
        store = make_store(lambda: role, SYSTEM)
        fd = transport.open_lock(self.group)
        assert not transport.try_lead(fd)
        following = Following(self.group, store, client, fd,
                              on_lead.set if on_lead else lambda: None, max_age=max_age)
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


def enricher(store: MetadataStore, shared: ViewSlot | None = None) -> Enricher:
    reader = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL")
    ident = Identifier(config.DEFAULT_FILENAME_PATTERNS, config.DEFAULT_CONTAINER_NAME_PATTERNS)
    return Enricher(reader, ident, store, "https://api:6443", 5.0, shared=shared)


def line(pod: str, cid: str) -> bytes:
    name = f"/var/log/containers/{pod}_shop_app-{cid}.log"
    return json.dumps({"msg": "hi", "$!": {"metadata": {"filename": name}}}).encode()


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_followers_splice_from_the_published_view_and_keep_no_metadata(node: Node) -> None:
    node.store.put_watched("pod", ("shop", "web-1"), WEB)
    node.store.put_watched("ns", "shop", SHOP)
    leader = enricher(node.store)
    store, following, _ = node.follower()
    follower = enricher(store, following.slot)
    following.start()  # says hello: the leader publishes
    wait_until(lambda: following.loads > 0, "nothing was published")
    web = line("web-1", "a" * 64)
    assert follower.reply(web) == leader.reply(web)
    assert json.loads(follower.reply(web))["$!"]["kubernetes"]["labels"] == {"app": "web"}
    assert follower.counters.podcachehits == 2 and node.source.calls == []
    assert store.sizes() == (0, 0)  # served from the mapping, not from a copy
    # A change reaches the follower; a deletion too (kept for its last lines).
    relabelled = PodMeta("uid-web", {"app": "web", "v": "2"}, None, "node-1", ("d" * 64,))
    node.store.put_watched("pod", ("shop", "web-1"), relabelled)
    wait_until(lambda: follower.reply(web) == leader.reply(web)
               and b'"v":"2"' in follower.reply(web), "the change did not arrive")
    node.store.forget_watched("pod", ("shop", "web-1"))
    view = following.slot.view
    wait_until(lambda: following.slot.view is not view, "the deletion did not arrive")
    gone = line("web-1", "d" * 64)
    assert b'"v":"2"' in follower.reply(gone)
    assert follower.reply(gone) == leader.reply(gone)
    assert (follower.counters.linesdeletedpod, leader.counters.linesdeletedpod) == (2, 1)
    assert store.sizes() == (0, 0)


def test_a_pod_the_view_lacks_is_asked_of_the_leader_then_forgotten(node: Node) -> None:
    store, following, _ = node.follower()
    follower = enricher(store, following.slot)
    following.start()
    wait_until(lambda: following.loads > 0, "nothing was published")
    web = line("web-1", "b" * 64)
    assert b'"labels":{"app":"web"}' in follower.reply(web)  # within the line's deadline
    assert sorted(node.source.calls) == [("ns", "shop"), ("pod", ("shop", "web-1"))]
    # Published by the leader, the pod leaves the follower's store for the view.
    wait_until(lambda: store.sizes() == (0, 0), "the follower kept its copy")
    assert b'"labels":{"app":"web"}' in follower.reply(web)
    assert len(node.source.calls) == 2


def test_a_stale_entry_in_the_view_makes_the_leader_refresh_it(tmp_path: Path) -> None:
    n = Node(tmp_path)
    try:
        n.store.preload([(("shop", "web-1"), WEB)], [("shop", SHOP)], [], lambda: 0.0)
        store, following, _ = n.follower()
        follower = enricher(store, following.slot)
        following.start()
        wait_until(lambda: following.loads > 0, "nothing was published")
        web = line("web-1", "c" * 64)
        assert b'"labels":{"app":"web"}' in follower.reply(web)  # served stale meanwhile
        assert follower.counters.linesstale == 1
        wait_until(lambda: ("pod", ("shop", "web-1")) in n.source.calls, "no refresh")
        loads = following.loads
        wait_until(lambda: following.loads > loads, "the refresh was not published")
        follower.reply(web)
        assert follower.counters.linesstale == 1
    finally:
        n.close()


def test_without_a_leader_a_follower_waits_a_moment_then_is_told(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path), IDENT)
    client = LeaderClient(group, timeout=5.0)
    t0 = time.monotonic()
    with pytest.raises(ApiUnreachable, match="no leader"):
        client.pod("shop", "web-1")
    assert time.monotonic() - t0 >= client.SEND_PATIENCE  # it waited for one to appear


def test_a_leader_that_opens_its_socket_late_is_still_asked(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path / "state"), IDENT)
    client = LeaderClient(group, timeout=5.0)
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
    # Once leading, a view published meanwhile (by the old leader, say) is not taken.
    node.store.put_watched("pod", ("shop", "web-2"), WEB)
    assert node.leading.publish(force=True)
    loads, view = following.loads, following.slot.view
    assert not following.load_if_changed()
    assert (following.loads, following.slot.view) == (loads, view)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to send as another user")
def test_another_user_cannot_reach_the_leaders_socket(node: Node) -> None:
    # Through the directory, as kubemeta reaches a socket in a state_dir too deep for
    # an address (autopkgtest's): the path's length must not be what stops it.
    where, name = os.path.split(node.group.address)
    prog = ("import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
            f"os.chdir({where!r}); "
            f"s.sendto(b'{{\"id\": 1, \"kind\": \"hello\"}}', {name!r})")
    out = subprocess.run([sys.executable, "-c", prog], user="nobody", timeout=30,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "PermissionError" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to send as another user")
def test_datagrams_from_another_user_are_ignored() -> None:
    """The second line of defence, should a socket be reachable after all."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    with ours, theirs:
        prog = ("import socket, sys; s = socket.socket(fileno=int(sys.argv[1])); "
                "s.send(b'from nobody')")
        subprocess.run([sys.executable, "-c", prog, str(theirs.fileno())], user="nobody",
                       pass_fds=[theirs.fileno()], check=True, timeout=30)
        theirs.send(b"from us")
        assert transport.receive(ours) is None  # nobody's, dropped
        got = transport.receive(ours)
        assert got is not None and got[0] == b"from us"


def test_a_follower_taking_the_lead_seeds_its_store_from_the_last_view() -> None:
    clock = FakeClock(1000.0)
    store = MetadataStore(clock=clock, settings=store_settings())
    gone = PodMeta("uid-gone", None, None, "node-1", ("e" * 64,))
    slot = ViewSlot()
    slot.view = View(encode([(("shop", "web-1"), WEB, math.inf)], [("shop", SHOP, 1500.0)],
                            [(gone, 900.0)], 0.0, jsonlib.dumps))
    roles.seed(store, slot, random.Random(1))
    assert slot.view is None  # its lines go to the store now
    pe, ne = store.lookup(REF, clock() + 5)
    assert pe is not None and pe.value == WEB and ne is not None and ne.value == SHOP
    # Refreshed from the API over half to all of their TTL, not at once.
    ttl = store_settings().cache.pod_ttl
    assert 1000 + ttl / 2 <= pe.fresh_until <= 1000 + ttl
    assert store.deleted() == 1
    assert store.shared()[2] == [(gone, 900.0)]


def test_an_unusable_last_view_seeds_nothing() -> None:
    store = MetadataStore(clock=FakeClock(), settings=store_settings())
    slot = ViewSlot()
    data = bytearray(encode([(("shop", "web-1"), WEB, 1.0)], [], [], 0.0, jsonlib.dumps))
    data[-40:] = b"\xff" * 40  # its key records
    slot.view = View(bytes(data))
    with pytest.raises(ViewError):
        slot.view.contents(0.0, jsonlib.loads)
    roles.seed(store, slot, random.Random(1))
    assert slot.view is None and store.sizes() == (0, 0)


def test_a_follower_forgets_answers_only_once_a_view_published_after_them_has_them() -> None:
    clock = FakeClock(1000.0)
    store = make_store(FakeFetcher({("shop", "web-1"): WEB}, {"shop": SHOP}), clock)
    try:
        store.lookup(REF, clock() + 5)  # answered at 1000 (the store's clock)
        store.lookup(PodRef("shop", "nope", "app", None, None), clock() + 5)
        assert store.sizes() == (2, 1)
        store.forget_known(999.0)  # a view published before the answers: kept
        assert store.sizes() == (2, 1)
        store.forget_known(1000.0)  # one published after them has them
        assert store.sizes() == (1, 0)  # the 404 stays: no question per line
    finally:
        store.stop()


def test_a_leader_that_cannot_open_its_socket_publishes_anyway(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path / "state"), IDENT)
    os.makedirs(group.address)  # in the way: the socket cannot be made there
    store = make_store(FakeFetcher({}, {}), SYSTEM)
    try:
        store.put_watched("pod", ("shop", "web-1"), WEB)
        leading = Leading(group, store, wait=5.0)
        leading.start()
        # No follower can say hello to a socket that is not there: publish anyway.
        wait_until(lambda: os.path.exists(group.shared_path), "nothing was published")
    finally:
        store.stop()


def test_a_view_its_leader_stopped_vouching_for_is_dropped_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    group = Group.of(str(tmp_path / "state"), IDENT)
    os.makedirs(os.path.dirname(group.shared_path), mode=0o750)
    # Published by a leader that then went quiet: nobody vouches for it.
    fd = transport.sealed_view(encode([(("shop", "web-1"), WEB, math.inf)], [], [], 0.0,
                                      jsonlib.dumps))
    snapshot.write(group.shared_path, transport.pointer(fd), durable=False)
    store = make_store(FakeFetcher({}, {}), SYSTEM)
    lock = transport.open_lock(group)
    following = Following(group, store, LeaderClient(group, timeout=1.0), lock, lambda: None,
                          max_age=30.0)
    try:
        assert following.load_if_changed() and following.slot.view is not None
        with caplog.at_level(logging.WARNING, "kubemeta"):
            for age in (31, 60, 600):
                past = time.time() - age
                os.utime(group.shared_path, (past, past))
                assert not following.load_if_changed()
                assert following.slot.view is None
        assert store.counters.sharedviewtooold == 1  # dropped once, not once per look
        assert caplog.text.count("older than share_view_max_age") == 1  # once per streak
        os.utime(group.shared_path)  # vouched for again
        assert following.load_if_changed() and following.slot.view is not None
    finally:
        store.stop()
        os.close(lock)
        os.close(fd)


def test_a_published_view_cannot_be_changed_under_its_readers(node: Node) -> None:
    """Truncated in place, a mapped file kills its readers with SIGBUS: a view is a
    sealed memory-only file, which no one can shrink, grow or write."""
    node.store.put_watched("pod", ("shop", "web-1"), WEB)
    _, following, _ = node.follower()
    following.start()
    wait_until(lambda: following.slot.view is not None, "nothing was published")
    pid, fd = Path(node.group.shared_path).read_text().split()
    view = f"/proc/{pid}/fd/{fd}"
    with pytest.raises(PermissionError):
        os.truncate(view, 0)
    with pytest.raises(PermissionError), open(view, "r+b") as f:
        f.write(b"planted")
    slot_view = following.slot.view
    assert slot_view is not None and slot_view.pod("shop", "web-1") is not None


def test_a_view_that_is_not_sealed_is_not_mapped(tmp_path: Path) -> None:
    group = Group.of(str(tmp_path / "state"), IDENT)
    os.makedirs(os.path.dirname(group.shared_path), mode=0o750)
    fd = os.memfd_create("planted")
    os.write(fd, encode([(("shop", "web-1"), WEB, math.inf)], [], [], 0.0, jsonlib.dumps))
    try:
        snapshot.write(group.shared_path, transport.pointer(fd), durable=False)
        with pytest.raises(ValueError, match="not sealed"):
            transport.map_view(group.shared_path)
    finally:
        os.close(fd)


def test_a_state_dir_too_deep_for_a_socket_address_still_shares(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # the socket's path overflows sun_path
    n = Node(deep)
    try:
        assert len(n.group.address.encode()) > 108
        store, _, _ = n.follower()
        pe, _ = store.lookup(REF, time.monotonic() + 5)  # asked of the leader, on its socket
        assert pe is not None and pe.value == WEB
        assert os.path.exists(n.group.address)  # the socket is in state_dir all the same
    finally:
        n.close()
