"""The emulator's control port (plain HTTP, loopback only): a test changes the
world while kubemeta runs: add, change or delete objects, inject faults, take
the listener down, cut watch streams, compact the watch history, manage
tokens, and read request counters."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from apiemulator.world import Fault

if TYPE_CHECKING:
    from apiemulator.server import ApiEmulator


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ControlServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length", "0") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def _reply(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        emu = self.server.emulator
        w = emu.world
        if self.path == "/requests":
            with w.lock:
                self._reply(200, {"total": w.total, "by_status": dict(w.by_status),
                                  "by_kind": dict(w.by_kind), "log": list(w.requests)})
        elif self.path == "/objects":
            with w.lock:
                self._reply(200, {"namespaces": list(w.namespaces.values()),
                                  "pods": list(w.pods.values())})
        else:
            self._reply(404, {"error": "unknown"})

    def do_POST(self) -> None:
        emu = self.server.emulator
        try:
            body = self._body()
            if self.path == "/objects":
                items = body.get("items", [body]) if isinstance(body, dict) else body
                self._reply(200, {"items": [emu.world.apply(o) for o in items]})
            elif self.path == "/faults":
                emu.add_fault(Fault(**body))
                self._reply(200, {"ok": True})
            elif self.path == "/tokens":
                emu.add_token(body["token"], body.get("user", "system:serviceaccount:k:kubemeta"))
                self._reply(200, {"ok": True})
            elif self.path == "/forbidden":
                with emu.world.lock:
                    emu.world.forbidden_users = set(body.get("users", []))
                self._reply(200, {"ok": True})
            elif self.path == "/listener":
                if body.get("up", True):
                    emu.listen()
                else:
                    emu.stop_listening()
                self._reply(200, {"ok": True})
            elif self.path == "/phase":
                emu.set_phase(body["phase"])
                self._reply(200, {"ok": True})
            elif self.path == "/timeline":
                emu.play([(p["phase"], float(p.get("seconds", 0))) for p in body])
                self._reply(200, {"ok": True})
            elif self.path == "/cut-watches":
                emu.cut_watches()
                self._reply(200, {"ok": True})
            elif self.path == "/compact":
                emu.world.compact()
                self._reply(200, {"ok": True})
            elif self.path == "/bookmark-interval":
                emu.world.bookmark_interval = float(body["seconds"])
                self._reply(200, {"ok": True})
            elif self.path == "/reset-counters":
                emu.reset_counters()
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "unknown"})
        except (ValueError, KeyError, TypeError) as e:
            self._reply(400, {"error": str(e)})

    def do_DELETE(self) -> None:
        emu = self.server.emulator
        parts = self.path.strip("/").split("/")
        if parts == ["faults"]:
            emu.clear_faults()
            self._reply(200, {"ok": True})
        elif parts[:2] == ["objects", "namespaces"] and len(parts) == 3:
            self._reply(200, {"deleted": emu.world.delete("Namespace", None, parts[2])})
        elif parts[:2] == ["objects", "namespaces"] and len(parts) == 5 and parts[3] == "pods":
            self._reply(200, {"deleted": emu.world.delete("Pod", parts[2], parts[4])})
        elif parts[:1] == ["tokens"] and len(parts) == 2:
            with emu.world.lock:
                emu.world.tokens.pop(parts[1], None)
            self._reply(200, {"ok": True})
        else:
            self._reply(404, {"error": "unknown"})


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], emulator: ApiEmulator) -> None:
        self.emulator = emulator
        super().__init__(addr, ControlHandler)
