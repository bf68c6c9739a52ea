"""The emulator's API server over HTTPS, and ApiEmulator, which runs it beside
its control port (control.py)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from apiemulator import faults, watch
from apiemulator.control import ControlServer
from apiemulator.objects import REASONS, status
from apiemulator.pki import Pki
from apiemulator.world import PHASES, Fault, World

_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")
_NS = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_NS_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_NODE = re.compile(r"^/api/v1/nodes/([^/]+)$")


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ApiServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        world = self.server.world
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        fault = world.take_fault(path)
        if fault is not None and self._fault(fault, path):
            return
        user = self._user()
        if user is None:
            self._status(401, "Unauthorized", path, None, "auth")
            return
        if user in world.forbidden_users:
            self._forbidden(path, user)
            return
        self._route(path, query, user)

    def do_POST(self) -> None:
        self._status(405, "the server does not allow this method on the requested resource",
                     self.path, None, "other")

    do_PUT = do_PATCH = do_DELETE = do_POST

    # -- routing --
    def _route(self, path: str, query: dict[str, str], user: str) -> None:
        world = self.server.world
        if path == "/version":
            self._json(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0"},
                       path, user, "version")
            return
        m = _POD.match(path)
        if m:
            with world.lock:
                obj = world.pods.get((m[1], m[2]))
            if obj is None:
                self._status(404, f'pods "{m[2]}" not found', path, user, "pod",
                             {"name": m[2], "kind": "pods"})
            else:
                self._json(200, obj, path, user, "pod")
            return
        m = _NS.match(path)
        if m:
            with world.lock:
                obj = world.namespaces.get(m[1])
            if obj is None:
                self._status(404, f'namespaces "{m[1]}" not found', path, user, "namespace",
                             {"name": m[1], "kind": "namespaces"})
            else:
                self._json(200, obj, path, user, "namespace")
            return
        m = _NODE.match(path)
        if m:
            with world.lock:
                obj = world.nodes.get(m[1])
            if obj is None:
                self._status(404, f'nodes "{m[1]}" not found', path, user, "node",
                             {"name": m[1], "kind": "nodes"})
            else:
                self._json(200, obj, path, user, "node")
            return
        watching = query.get("watch") in ("1", "true")
        if path == "/api/v1/nodes":
            sel = query.get("fieldSelector", "")
            name = sel.split("=", 1)[1] if sel.startswith("metadata.name=") else None

            def named(o: dict[str, Any]) -> bool:
                return name is None or o["metadata"].get("name") == name

            if watching:
                watch.stream(self, self.server, "Node", named, query, user, "node_watch")
                return
            with world.lock:
                items = [o for o in world.nodes.values() if named(o)]
            self._list("NodeList", items, query, path, user, "node_list")
            return
        if path == "/api/v1/namespaces":
            if watching:
                watch.stream(self, self.server, "Namespace", lambda o: True, query, user,
                             "namespace_watch")
                return
            with world.lock:
                items = list(world.namespaces.values())
            self._list("NamespaceList", items, query, path, user, "namespace_list")
            return
        m = _NS_PODS.match(path)
        if path == "/api/v1/pods" or m:
            in_ns = m[1] if m else None
            sel = query.get("fieldSelector", "")
            node = sel.split("=", 1)[1] if sel.startswith("spec.nodeName=") else None

            def match(p: dict[str, Any]) -> bool:
                return ((in_ns is None or p["metadata"].get("namespace") == in_ns)
                        and (node is None or p.get("spec", {}).get("nodeName") == node))

            if watching:
                watch.stream(self, self.server, "Pod", match, query, user, "pod_watch")
                return
            with world.lock:
                items = [p for p in world.pods.values() if match(p)]
            self._list("PodList", items, query, path, user, "pod_list")
            return
        self._status(404, "the server could not find the requested resource", path, user,
                     "other")

    def _list(self, kind: str, items: list[dict[str, Any]], query: dict[str, str], path: str,
              user: str, counter: str, versioned: bool = True) -> None:
        """``versioned``: the API server's lists carry a resourceVersion; the
        kubelet's ``/pods`` answers ``metadata: {}``."""
        limit = int(query.get("limit", "0") or 0)
        if limit > 0:
            items = items[:limit]
        stripped = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                    for o in items]
        metadata = {"resourceVersion": str(self.server.world.rv)} if versioned else {}
        self._json(200, {"kind": kind, "apiVersion": "v1", "metadata": metadata,
                         "items": stripped}, path, user, counter)

    # -- authentication --
    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self.server.world.lock:
                return self.server.world.tokens.get(auth[7:].strip())
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket):
            cert = conn.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for pair in rdn:
                        if pair[0] == "commonName":
                            return str(pair[1])
        return None

    # -- answers --
    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, code: int, obj: Any, path: str, user: str | None, kind: str,
              headers: dict[str, str] | None = None) -> None:
        self.server.world.record(path, code, user, kind)
        self._send(code, json.dumps(obj).encode(), headers)

    def _status(self, code: int, message: str, path: str, user: str | None, kind: str,
                details: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> None:
        reason = REASONS.get(code, "Unknown")
        self._json(code, status(code, reason, message, details), path, user, kind, headers)

    def _forbidden(self, path: str, user: str | None) -> None:
        m = _POD.match(path)
        res, name, ns = ("pods", m[2], m[1]) if m else ("namespaces", path.rsplit("/", 1)[-1], "")
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        self._status(403, f'{res} "{name}" is forbidden: User "{user or "system:anonymous"}" '
                     f'cannot get resource "{res}" in API group ""{where}', path, user, "auth",
                     {"name": name, "kind": res})

    def _fault(self, f: Fault, path: str) -> bool:
        """Play a fault; True when the request has been dealt with."""
        return faults.play(self, f, path)


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], world: World, ctx: ssl.SSLContext) -> None:
        self.world = world
        self.ctx = ctx
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        self.watch_generation = 0  # moved on to cut every open watch stream
        super().__init__(addr, ApiHandler)

    def drop_connections(self) -> None:
        """As a restarting API server does: every established connection is cut."""
        with self.live_lock:
            socks = list(self.live)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the request's own thread, so one slow
        # or broken client cannot hold up the accept loop.
        fault = self.world.take_fault("", tls=True)
        if fault is not None:
            # Not TLS at all: the client's handshake fails.
            self.world.record("", 0, None, "fault_tls")
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\nnot tls\r\n")
                request.close()
            return
        try:
            request.settimeout(30)
            tls = self.ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError):
            return
        with self.world.lock:
            self.world.connections += 1
        # wrap_socket detached ``request``: the TLS socket is the one to cut.
        with self.live_lock:
            self.live.add(tls)
        try:
            super().finish_request(tls, client_address)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-answer (it stopped, or gave up): its choice
        finally:
            with self.live_lock:
                self.live.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()


class ApiEmulator:
    """The API on ``url`` (HTTPS) and its control port on ``control_url`` (HTTP)."""

    def __init__(self, pki: Pki, host: str = "127.0.0.1", port: int = 0,
                 control_port: int = 0) -> None:
        self.pki = pki
        self.world = World()
        self.host = host
        self.port = port
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        ctx.load_verify_locations(pki.ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self._ctx = ctx
        self._api: _ApiServer | None = None
        self._control = ControlServer((host, control_port), self)
        self.control_url = f"http://{host}:{self._control.server_address[1]}"
        self._lock = threading.Lock()
        self.phase = "ok"
        self.phase_started: dict[str, float] = {}
        self.kubelets: list[Any] = []

    def start_kubelet(self, node: str = "node-1") -> Any:
        """A kubelet for ``node`` on a port of its own (see emulator.kubelet)."""
        from apiemulator.kubelet import Kubelet

        k = Kubelet(self.world, self._ctx, node, self.host).start()
        self.kubelets.append(k)
        return k

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> ApiEmulator:
        threading.Thread(target=self._control.serve_forever, daemon=True,
                         name="emulator-control").start()
        self.listen()
        return self

    def listen(self) -> None:
        with self._lock:
            if self._api is not None:
                return
            self.world.released.clear()
            srv = _ApiServer((self.host, self.port), self.world, self._ctx)
            self.port = srv.server_address[1]
            self._api = srv
            threading.Thread(target=srv.serve_forever, daemon=True, name="emulator-api").start()

    def stop_listening(self) -> None:
        """Close the listening socket: new connections are refused, hung ones freed."""
        with self._lock:
            srv, self._api = self._api, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
            srv.drop_connections()
        self.world.released.set()

    def cut_watches(self) -> None:
        """Every open watch stream stops mid-answer, as when a server dies."""
        with self._lock:
            if self._api is not None:
                self._api.watch_generation += 1
        with self.world.changed:
            self.world.changed.notify_all()

    def add_token(self, token: str, user: str) -> None:
        with self.world.lock:
            self.world.tokens[token] = user

    def add_fault(self, fault: Fault) -> None:
        with self.world.lock:
            self.world.faults.append(fault)

    def clear_faults(self) -> None:
        with self.world.lock:
            self.world.faults.clear()
        self.world.released.set()
        self.world.released = threading.Event()

    def set_phase(self, phase: str) -> None:
        """Put the API in one phase of a restart: down, forbidden, hanging, ..."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")
        self.clear_faults()
        with self._lock:
            if self._api is not None:
                self._api.drop_connections()
        if phase == "refused":
            self.stop_listening()
            self.phase = phase
            return
        faults = {
            "forbidden": Fault("status", status=403),
            "hang": Fault("hang"),
            "reset": Fault("reset"),
            "slow": Fault("delay", seconds=2.0),
            "throttled": Fault("status", status=429, retry_after=2),
            "unavailable": Fault("status", status=503, retry_after=1),
            "server_error": Fault("status", status=500),
            "tls": Fault("tls"),
            "garbage": Fault("garbage"),
            "truncated": Fault("truncate"),  # the connection dies mid-answer
        }
        if phase in faults:
            self.add_fault(faults[phase])
        # Listening again only once the phase's fault is in: a request in between
        # would be answered as by a healthy server.
        self.listen()
        self.phase = phase

    def play(self, timeline: list[tuple[str, float]]) -> threading.Thread:
        """Run phases one after another in the background; the last one stays."""

        def run() -> None:
            self.phase_started.clear()
            for phase, seconds in timeline:
                self.set_phase(phase)
                self.phase_started.setdefault(phase, time.monotonic())
                time.sleep(seconds)

        t = threading.Thread(target=run, name="emulator-timeline", daemon=True)
        t.start()
        return t

    def reset_counters(self) -> None:
        w = self.world
        with w.lock:
            w.total = 0
            w.by_status.clear()
            w.by_kind.clear()
            w.requests.clear()

    def close(self) -> None:
        for k in self.kubelets:
            k.stop()
        self.stop_listening()
        self._control.shutdown()
        self._control.server_close()
