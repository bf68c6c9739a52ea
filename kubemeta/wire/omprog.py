"""rsyslog's omprog protocol with confirmMessages: sans-IO, frames in, steps out.

rsyslog writes one record per line and waits for one status line per record:
``OK``, or inside a transaction ``DEFER_COMMIT`` and ``PREVIOUS_COMMITTED``.
Any other line suspends the action; rsyslog then restarts or retries the helper.

A status may only be given once the record's line is in the sink, inside a
transaction too. When a helper dies in the middle of a transaction, rsyslog
(action.c, 8.2302 and 8.2504 alike) restarts it, begins a new transaction and
sends again the record that was in flight, but not the records before it that
were answered DEFER_COMMIT: a line held back for the commit would be lost. So
every record is written when it arrives, and DEFER_COMMIT means "written".
Delivery is at least once: a helper killed after writing a record and before
answering has that record sent again, and a failed commit has rsyslog send the
whole batch again, record by record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubemeta.wire.framing import Frame

BEGIN = b"BEGIN TRANSACTION"
COMMIT = b"COMMIT TRANSACTION"
OK = "OK"
DEFER = "DEFER_COMMIT"


@dataclass(frozen=True)
class Step:
    """What to do for one input line: write ``data`` (if any) to the sink, then
    answer ``status``; if the write fails, answer with an error instead, and
    rsyslog sends the record again."""

    data: bytes | None
    status: str


class OmprogSession:
    """The transaction state of one omprog child. ``enrich`` maps a frame to the
    line the sink gets (None: nothing to write)."""

    def __init__(self, enrich: Callable[[Frame], bytes | None]) -> None:
        self._enrich = enrich
        self._in_txn = False

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def step(self, frame: Frame) -> Step:
        if frame == BEGIN:
            # A BEGIN inside a transaction means rsyslog gave up on the last one;
            # what it sends again was written already, and comes out twice.
            self._in_txn = True
            return Step(None, OK)
        if frame == COMMIT:
            self._in_txn = False
            return Step(None, OK)  # every record of it is in the sink already
        return Step(self._enrich(frame), DEFER if self._in_txn else OK)
