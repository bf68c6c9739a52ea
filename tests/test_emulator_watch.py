"""The emulator's list and watch, read the way a client reads them: over HTTPS,
decoded by kubemeta's own watch decoder."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod
from kubemeta.errors import ApiGone
from kubemeta.wire.listproto import ListDecoder
from kubemeta.wire.watchproto import WatchDecoder, WatchEvent

from conftest import TOKEN


def connect(emu: ApiEmulator) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=emu.pki.ca_file)
    return http.client.HTTPSConnection(emu.host, emu.port, context=ctx, timeout=10)


def get(emu: ApiEmulator, path: str) -> tuple[http.client.HTTPSConnection,
                                               http.client.HTTPResponse]:
    conn = connect(emu)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    return conn, conn.getresponse()


def list_pods(emu: ApiEmulator, node: str = "node-1") -> tuple[str, list[dict[str, Any]]]:
    conn, resp = get(emu, f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}&resourceVersion=0")
    decoder = ListDecoder(1 << 20)
    items = decoder.feed(resp.read()) + decoder.close()
    conn.close()
    assert decoder.resource_version is not None
    return decoder.resource_version, items


class Watch:
    """A watch read in a thread, events collected as they come."""

    def __init__(self, emu: ApiEmulator, query: str) -> None:
        self.conn, self.resp = get(emu, "/api/v1/pods?watch=1&" + query)
        self.events: list[WatchEvent] = []
        self.error: BaseException | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        dec = WatchDecoder()
        try:
            while True:
                data = self.resp.read1(65536)
                if not data:
                    break
                self.events.extend(dec.feed(data))
        except BaseException as e:  # what the client would see
            self.error = e
        finally:
            self.ended.set()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[WatchEvent]:
        end = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < end:
            time.sleep(0.02)
        assert len(self.events) >= n, self.events
        return self.events

    def close(self) -> None:
        # Shut down first: close() alone waits for the reader thread's blocked read.
        if self.conn.sock is not None:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.ended.wait(5)
        self.conn.close()


@pytest.fixture
def world(emulator: ApiEmulator) -> ApiEmulator:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    emulator.world.apply(make_pod("shop", "elsewhere", node="node-2"))
    return emulator


def test_list_then_watch_from_its_version(world: ApiEmulator) -> None:
    rv, items = list_pods(world)
    assert [p["metadata"]["name"] for p in items] == ["web-1"]
    w = Watch(world, f"fieldSelector=spec.nodeName%3Dnode-1&resourceVersion={rv}")
    world.world.apply(make_pod("shop", "web-1", {"app": "web", "v": "2"}))
    world.world.apply(make_pod("shop", "other-node", node="node-2"))  # filtered out
    world.world.apply(make_pod("shop", "web-2"))
    world.world.delete("Pod", "shop", "web-1")
    evs = w.wait_for(3)
    w.close()
    assert [(e.type, e.obj["metadata"]["name"]) for e in evs] == [
        ("MODIFIED", "web-1"), ("ADDED", "web-2"), ("DELETED", "web-1")]
    assert evs[0].obj["metadata"]["labels"] == {"app": "web", "v": "2"}
    assert int(evs[2].resource_version or 0) > int(evs[1].resource_version or 0) > int(rv)


def test_watch_without_version_starts_with_the_current_state(world: ApiEmulator) -> None:
    w = Watch(world, "fieldSelector=spec.nodeName%3Dnode-1")
    evs = w.wait_for(1)
    w.close()
    assert [(e.type, e.obj["metadata"]["name"]) for e in evs] == [("ADDED", "web-1")]


def test_quiet_watch_gets_bookmarks_and_ends_at_its_timeout(world: ApiEmulator) -> None:
    world.world.bookmark_interval = 0.2
    rv, _ = list_pods(world)
    w = Watch(world, f"resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1")
    assert w.ended.wait(5)
    assert w.error is None  # a clean end: the last chunk came
    assert len(w.events) >= 2
    assert {e.type for e in w.events} == {"BOOKMARK"}
    assert w.events[-1].resource_version == rv
    # As the API server, it keeps the connection for the next request.
    w.conn.request("GET", "/api/v1/namespaces/shop", headers={"Authorization": f"Bearer {TOKEN}"})
    assert w.conn.getresponse().status == 200


def test_too_old_version_is_410_gone(world: ApiEmulator) -> None:
    rv, _ = list_pods(world)
    world.world.apply(make_pod("shop", "web-2"))
    world.world.compact()
    conn, resp = get(world, f"/api/v1/pods?watch=1&resourceVersion={rv}")
    assert resp.status == 200  # the error comes as an event, as from the watch cache
    with pytest.raises(ApiGone, match="410 Gone: too old resource version"):
        WatchDecoder().feed(resp.read())
    conn.close()


def test_cut_stream_breaks_off_mid_answer(world: ApiEmulator) -> None:
    rv, _ = list_pods(world)
    w = Watch(world, f"resourceVersion={rv}")
    time.sleep(0.3)
    world.cut_watches()
    assert w.ended.wait(5)
    assert isinstance(w.error, http.client.IncompleteRead | ConnectionError | ssl.SSLError)


def test_bookmarks_come_while_other_objects_change(world: ApiEmulator) -> None:
    world.world.bookmark_interval = 0.3
    rv, _ = list_pods(world)
    w = Watch(world, f"fieldSelector=spec.nodeName%3Dnode-1&resourceVersion={rv}"
                     "&allowWatchBookmarks=true")
    for i in range(12):  # busy elsewhere: another node's pods change all the time
        world.world.apply(make_pod("shop", "elsewhere", {"i": str(i)}, node="node-2"))
        time.sleep(0.1)
    w.close()
    assert [e.type for e in w.events].count("BOOKMARK") >= 2
