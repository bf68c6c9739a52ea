"""Watch streams as the API server sends them: a chunked 200 answer carrying
one JSON event per line, from a resourceVersion on (410 Gone as an ERROR event
when that version is no longer in the history), BOOKMARK events on a quiet
stream when asked for, and a clean end at ``timeoutSeconds`` that keeps the
connection open."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

from apiemulator.objects import status
from apiemulator.world import Event, World

Match = Callable[[dict[str, Any]], bool]


class StreamServer(Protocol):
    world: World
    watch_generation: int


def _reached(world: World, since: int) -> bool:
    """Whether the server has reached ``since``, waiting up to too_new_wait."""
    end = time.monotonic() + world.too_new_wait
    with world.changed:
        while world.rv < since:
            left = end - time.monotonic()
            if left <= 0:
                return False
            world.changed.wait(left)
    return True


def stream(handler: Any, server: StreamServer, kind: str, match: Match,
           query: dict[str, str], user: str, counter: str) -> None:
    """Serve one watch on ``handler`` (a BaseHTTPRequestHandler) until it ends;
    the request is counted once, under ``counter`` or as a 400."""
    world = server.world
    path = urlsplit(handler.path).path
    rv_text = query.get("resourceVersion", "")
    try:
        timeout = min(float(query.get("timeoutSeconds") or 1800), 3600.0)
        since = None if rv_text in ("", "0") else int(rv_text)
    except ValueError:
        handler._status(400, f"resourceVersion: Invalid value: {rv_text[:40]!r}",
                        path, user, counter)
        return
    if since is not None and not _reached(world, since):
        # A server behind the version asked for (a restored etcd, a lagging
        # replica): as the API server, wait a moment, then answer 504.
        handler._status(504, f"Too large resource version: {since}, current: {world.rv}",
                        path, user, counter, {"causes": [{
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version"}], "retryAfterSeconds": 1})
        return
    world.record(path, 200, user, counter)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    generation = server.watch_generation
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.close_connection = True
    with world.lock:
        initial: list[dict[str, Any]] = []
        if since is None:
            # No version, or "0": the current state as ADDED events, then changes.
            objs: Iterable[dict[str, Any]] = (
                world.pods.values() if kind == "Pod" else world.nodes.values()
                if kind == "Node" else world.namespaces.values())
            initial = [o for o in objs if match(o)]
            since = world.rv
            gone = False
        else:
            gone = world.too_old(since)
    write = _Writer(handler)
    if gone:
        body = status(410, "Expired", f"too old resource version: {since} ({world.rv})")
        write.event("ERROR", body)
        handler.close_connection = not write.end()
        return
    for o in initial:
        if not write.event("ADDED", o):
            return
    start = time.monotonic()
    next_bookmark = start + world.bookmark_interval
    while True:
        with world.changed:
            batch = _after(world, since)
            if not batch and server.watch_generation == generation:
                world.changed.wait(min(0.2, world.bookmark_interval))
                batch = _after(world, since)
        if server.watch_generation != generation:
            write.cut()
            return
        sent = False
        for ev in batch:
            since = ev.rv
            if ev.obj.get("kind") == kind and match(ev.obj):
                if not write.event(ev.type, ev.obj):
                    return
                sent = True
        now = time.monotonic()
        if now - start >= timeout:
            # A clean end leaves the connection open for the next request, as
            # the API server's does.
            handler.close_connection = not write.end()
            return
        if sent:  # changes this watcher does not see must not hold its bookmarks back
            next_bookmark = now + world.bookmark_interval
        elif bookmarks and now >= next_bookmark:
            next_bookmark = now + world.bookmark_interval
            mark = {"kind": kind, "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(since)}}
            if not write.event("BOOKMARK", mark):
                return


def _after(world: World, rv: int) -> list[Event]:
    """Events newer than ``rv``, oldest first. Caller holds the lock."""
    out: list[Event] = []
    for ev in reversed(world.history):
        if ev.rv <= rv:
            break
        out.append(ev)
    out.reverse()
    return out


class _Writer:
    def __init__(self, handler: Any) -> None:
        self._h = handler

    def event(self, kind: str, obj: dict[str, Any]) -> bool:
        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        return self._chunk(line)

    def end(self) -> bool:
        return self._chunk(b"")

    def cut(self) -> None:
        """As a dying server does: the stream stops mid-answer, with no last chunk."""
        with contextlib.suppress(OSError):
            self._h.connection.shutdown(socket.SHUT_RDWR)

    def _chunk(self, data: bytes) -> bool:
        try:
            self._h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self._h.wfile.flush()
        except OSError:  # the client went away, or the connection was dropped
            return False
        return True
