"""Newline framing of rsyslog's pipe: sans-IO, bounded.

feed() takes whatever bytes arrived and returns the complete lines, in order.
A line longer than ``max_line`` is not kept: its bytes are dropped as they
come and, at its newline, OVERSIZE stands in its place, so the caller still
answers it with exactly one reply and the pipe stays in step.
"""

from __future__ import annotations

from typing import Final


class _Oversize:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OVERSIZE"


OVERSIZE: Final = _Oversize()
Frame = bytes | _Oversize


class LineFramer:
    def __init__(self, max_line: int) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        if not self._buf and not self._skipping and data.endswith(b"\n"):
            # The usual case under mmexternal: exactly one whole line per read.
            pieces = data.split(b"\n")
            pieces.pop()
            for p in pieces:
                out.append(p if len(p) <= self._max else OVERSIZE)
            return out
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._keep(data, start, len(data))
                return out
            if self._skipping:
                self._skipping = False
                out.append(OVERSIZE)
            elif len(self._buf) + (nl - start) > self._max:
                self._buf.clear()
                out.append(OVERSIZE)
            elif self._buf:
                self._buf += data[start:nl]
                out.append(bytes(self._buf))
                self._buf.clear()
            else:
                out.append(data[start:nl])
            start = nl + 1

    def _keep(self, data: bytes, start: int, end: int) -> None:
        if self._skipping:
            return
        if len(self._buf) + (end - start) > self._max:
            self._buf.clear()
            self._skipping = True
            return
        self._buf += data[start:end]

    def pending(self) -> int:
        """Bytes of an unfinished line (for the EOF message)."""
        return len(self._buf) + (1 if self._skipping else 0)
