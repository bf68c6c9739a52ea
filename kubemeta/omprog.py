"""rsyslog's omprog protocol with confirmMessages: sans-IO, frames in, steps out.

rsyslog writes one record per line and waits for one status line per record:
``OK``, or inside a transaction ``DEFER_COMMIT`` (buffered, not yet safe) and
``PREVIOUS_COMMITTED`` (everything before this record is safe). Any other line
suspends the action; rsyslog then resends everything not yet confirmed. So a
status may only say a record is safe once the sink has taken it.

Inside a transaction the enriched lines are buffered and written in one go at
COMMIT: a failure before the commit writes nothing, so the resend duplicates
nothing. A buffer that would outgrow its bound is written early and the record
that did not fit is answered PREVIOUS_COMMITTED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubemeta.framing import Frame

BEGIN = b"BEGIN TRANSACTION"
COMMIT = b"COMMIT TRANSACTION"
OK = "OK"
DEFER = "DEFER_COMMIT"
PREVIOUS = "PREVIOUS_COMMITTED"


@dataclass(frozen=True)
class Step:
    """What to do for one input line: write ``data`` (if any) to the sink, then
    answer ``status``; if the write fails, answer with an error instead and
    call ``OmprogSession.failed``."""

    data: bytes | None
    status: str


class OmprogSession:
    """The transaction state of one omprog child. ``enrich`` maps a frame to the
    line the sink gets (None: nothing to write)."""

    def __init__(self, enrich: Callable[[Frame], bytes | None], max_batch: int) -> None:
        self._enrich = enrich
        self._max = max_batch
        self._in_txn = False
        self._buf: list[bytes] = []
        self._size = 0

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def step(self, frame: Frame) -> Step:
        if frame == BEGIN:
            # A BEGIN inside a transaction means rsyslog gave up on the last one
            # and will resend it: what we buffered for it must not be written.
            self._reset()
            self._in_txn = True
            return Step(None, OK)
        if frame == COMMIT:
            data = b"".join(self._buf) if self._buf else None
            self._reset()
            return Step(data, OK)
        line = self._enrich(frame)
        if not self._in_txn:
            return Step(line, OK)
        if line is None:
            return Step(None, DEFER)
        if self._buf and self._size + len(line) > self._max:
            data = b"".join(self._buf)
            self._buf, self._size = [line], len(line)
            return Step(data, PREVIOUS)
        self._buf.append(line)
        self._size += len(line)
        return Step(None, DEFER)

    def failed(self) -> None:
        """The sink did not take a step's data: rsyslog will resend all unconfirmed
        records of this transaction, so drop ours rather than write them twice."""
        self._reset()

    def _reset(self) -> None:
        self._in_txn = False
        self._buf = []
        self._size = 0
