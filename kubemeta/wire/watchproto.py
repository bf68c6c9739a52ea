"""Kubernetes watch streams, sans-IO: bytes in, events out.

A watch answer is one JSON object per line, ``{"type": T, "object": {...}}``,
T being ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. ``WatchDecoder.feed``
takes whatever bytes arrived and returns the whole events, in order. Whatever
is wrong with the stream raises an ApiError, and nothing else: an ERROR event
as its status says (410 Gone as ApiGone: list again), a line that is not an
event, or one longer than ``max_event`` (never buffered whole), as
ApiBadResponse. After an error the stream is not to be trusted: reconnect.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kubemeta import jsonlib
from kubemeta.errors import ApiBadResponse, status_error
from kubemeta.wire.framing import OVERSIZE, LineFramer

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


class WatchEvent(NamedTuple):
    type: str
    obj: dict[str, Any]
    resource_version: str | None


class WatchDecoder:
    def __init__(self, max_event: int = 4 * 1024 * 1024) -> None:
        self._framer = LineFramer(max_event)
        self._max = max_event

    def feed(self, data: bytes) -> list[WatchEvent]:
        out: list[WatchEvent] = []
        for frame in self._framer.feed(data):
            if frame is OVERSIZE:
                raise ApiBadResponse(f"watch event larger than {self._max} bytes", 200)
            assert isinstance(frame, bytes)
            if frame.strip():
                out.append(decode_event(frame))
        return out

    def pending(self) -> int:
        return self._framer.pending()


def decode_event(line: bytes) -> WatchEvent:
    try:
        ev = jsonlib.loads(line)
    except (ValueError, RecursionError) as e:
        raise ApiBadResponse("watch event is not JSON", 200) from e
    if not isinstance(ev, dict) or not isinstance(ev.get("object"), dict):
        raise ApiBadResponse("watch event has no object", 200)
    kind = ev.get("type")
    obj: dict[str, Any] = ev["object"]
    if kind == "ERROR":
        code = obj.get("code")
        message = obj.get("message")
        raise status_error(code if isinstance(code, int) and 400 <= code < 600 else 500,
                           _str(obj.get("reason")), _str(message))
    if kind not in EVENT_TYPES:
        raise ApiBadResponse(f"unknown watch event type {str(kind)[:40]!r}", 200)
    md = obj.get("metadata")
    rv = md.get("resourceVersion") if isinstance(md, dict) else None
    return WatchEvent(kind, obj, rv if isinstance(rv, str) else None)


def _str(v: Any) -> str | None:
    return v[:300] if isinstance(v, str) else None
