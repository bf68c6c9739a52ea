"""The faults the emulator plays on a request (see world.Fault): what a
failing, slow or hostile API server does to a client."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from apiemulator.world import Fault


def play(self: Any, f: Fault, path: str) -> bool:
    """Play a fault; True when the request has been dealt with."""
    world = self.server.world
    if f.action == "delay":
        time.sleep(f.seconds)
        return False
    if f.action == "status":
        headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else None
        if f.status == 403:
            self._forbidden(path, None)
            return True
        msgs = {429: "Too many requests, please try again later.",
                500: "Internal error occurred: etcdserver: request timed out",
                503: "service unavailable"}
        details = {"retryAfterSeconds": f.retry_after} if f.retry_after else None
        self._status(f.status, msgs.get(f.status, "injected fault"), path, None, "fault",
                     details, headers)
        return True
    world.record(path, 0, None, f"fault_{f.action}")
    if f.action == "hang":
        world.released.wait(f.seconds or 600)
        self.close_connection = True
        return True
    if f.action == "reset":
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        return True
    if f.action == "close":
        # Closed with no answer: a server that reaps a kept-alive connection just
        # as the client sends on it, or one dying between requests.
        self.close_connection = True
        return True
    if f.action == "garbage":
        self._send(200, b"<html>not json \x00\xff</html>")
        return True
    if f.action == "truncate":
        self._send(200, b'{"kind": "Pod", "metadata": {"na', length=4096)
        self.close_connection = True
        return True
    if f.action == "wrong_kind":
        self._send(200, json.dumps({"kind": "ConfigMap", "apiVersion": "v1",
                                    "metadata": {"name": "x"}}).encode())
        return True
    if f.action == "huge":
        # A real server streams a large answer in pieces; pausing at pause_at leaves
        # the client's socket empty with the rest of the body still to come.
        body = b'{"kind": "Pod", "junk": "' + b"x" * f.size + b'"}'
        cut = len(body) if f.pause_at is None else f.pause_at
        self._send(200, body[:cut], length=len(body))
        if cut < len(body):
            time.sleep(f.seconds)
            self.wfile.write(body[cut:])
            self.wfile.flush()
        return True
    if f.action in ("endless", "endless_error"):
        # An answer that never ends (a broken proxy, a hostile server): only a
        # client that bounds what it reads gets away. An error answer is read by
        # another path than a success, and needs its own bound.
        if f.action == "endless":
            self._send(200, b'{"kind": "PodList", "items": [', length=1 << 40)
        else:
            self._send(500, b'{"kind": "Status", "message": "', length=1 << 40)
        chunk = b'{"metadata": {"name": "x"}},' * 2048
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass  # the client gave up
        self.close_connection = True
        return True
    if f.action == "trickle_headers":
        # The status line and headers, one byte every ``seconds``: they are read
        # inside the client's HTTP library, not by its own body loop.
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n")
        try:
            for i in range(len(head)):
                time.sleep(f.seconds)
                self.wfile.write(head[i:i + 1])
                self.wfile.flush()
            self.wfile.write(b"{}")
            self.wfile.flush()
        except OSError:  # the client gave up before the headers were in: as it should
            world.record(path, 0, None, "client_gave_up_on_headers")
        self.close_connection = True
        return True
    if f.action == "trickle":
        # A server that answers, one byte every ``seconds``: each read of the
        # client's is within its read timeout, the answer never is.
        body = json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {
            "name": "trickled", "namespace": "shop", "uid": "u"}}).encode()
        self._send(200, b"", length=len(body))
        for i in range(len(body)):
            time.sleep(f.seconds)
            try:
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
            except OSError:
                break  # the client gave up: as it should
        self.close_connection = True
        return True
    return False  # pragma: no cover
