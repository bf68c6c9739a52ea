"""A node's kubelet, as far as kubemeta uses it: ``GET /pods`` over HTTPS, the
node's pods as a PodList, for a bearer token or a client certificate. It runs
beside the API and serves from the same world, but the API's faults and phases
do not reach it: a kubelet keeps answering while the control plane restarts.
Its own outage is ``stop``."""

from __future__ import annotations

import ssl
import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from apiemulator.server import ApiHandler, _ApiServer
from apiemulator.world import World


class KubeletHandler(ApiHandler):
    def do_GET(self) -> None:
        world = self.server.world
        path = urlsplit(self.path).path
        user = self._user()
        if user is None:
            self._status(401, "Unauthorized", path, None, "kubelet_auth")
            return
        if path != "/pods":
            self._status(404, "not found", path, user, "kubelet_other")
            return
        node = self.server.node  # type: ignore[attr-defined]
        with world.lock:
            items = [p for p in world.pods.values() if p.get("spec", {}).get("nodeName") == node]
        self._list("PodList", items, {}, path, user, "kubelet_pods", versioned=False)


class Kubelet:
    def __init__(self, world: World, ctx: ssl.SSLContext, node: str,
                 host: str = "127.0.0.1") -> None:
        self._srv: ThreadingHTTPServer | None = None
        self._world, self._ctx, self.node, self.host = world, ctx, node, host
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> Kubelet:
        srv: Any = _ApiServer((self.host, self.port), self._world, self._ctx)
        srv.RequestHandlerClass = KubeletHandler
        srv.node = self.node
        self.port = srv.server_address[1]
        self._srv = srv
        threading.Thread(target=srv.serve_forever, daemon=True, name="emulator-kubelet").start()
        return self

    def stop(self) -> None:
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
            srv.drop_connections()  # type: ignore[attr-defined]
