"""One line in, one reply out: the per-line logic, free of I/O.

``reply`` never raises and always returns exactly one newline-terminated JSON
object. Replies are serialized once per (pod, container) and metadata version,
and reused for every later line of that container.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kubemeta import jsonlib
from kubemeta.errors import RecordError
from kubemeta.framing import Frame, _Oversize
from kubemeta.identify import Identifier, PodRef
from kubemeta.record import RecordReader
from kubemeta.schema import reply_object
from kubemeta.store import Counters, MetadataStore

log = logging.getLogger("kubemeta.enricher")

EMPTY = b"{}\n"


class Throttle:
    """Log a recurring problem at most once per ``interval``, with a count of the rest."""

    def __init__(self, clock: Callable[[], float], interval: float = 60.0) -> None:
        self._clock = clock
        self._interval = interval
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        """None: stay quiet. Otherwise the number of messages suppressed since the last."""
        now = self._clock()
        if now < self._next.get(kind, 0.0):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._next[kind] = now + self._interval
        return self._suppressed.pop(kind, 0)


class Enricher:
    MEMO_SIZE = 4096

    def __init__(self, reader: RecordReader, identifier: Identifier,
                 store: MetadataStore | None, master_url: str, deadline: float,
                 clock: Callable[[], float] = time.monotonic,
                 dumps: Callable[[Any], bytes] = jsonlib.dumps,
                 counters: Counters | None = None) -> None:
        self._reader = reader
        self._identify = identifier.identify
        self._store = store
        self._master_url = master_url
        self._deadline = deadline
        self._clock = clock
        self._dumps = dumps
        self._memo: dict[PodRef, tuple[Any, Any, bytes]] = {}
        self._throttle = Throttle(clock)
        self.counters = store.counters if store is not None else (counters or Counters())

    def reply(self, frame: Frame) -> bytes:
        try:
            return self._reply(frame)
        except Exception as e:  # the pipe must stay in step whatever happens
            self._problem("bug", "could not enrich a record (%s: %s); answered {}",
                          type(e).__name__, e)
            return EMPTY

    def _reply(self, frame: Frame) -> bytes:
        if isinstance(frame, _Oversize):
            self._problem("oversize", "a record longer than max_line_bytes was answered {}")
            return EMPTY
        try:
            src = self._reader.read(frame)
        except RecordError as e:
            self._problem("bad_record", "unreadable record from rsyslog (%s); answered {}", e)
            return EMPTY
        ref = self._identify(src)
        if ref is None:
            return EMPTY
        self.counters.recordseen += 1
        pe = ne = None
        if self._store is not None and ref.valid_for_api():
            now = self._clock()
            pe, ne = self._store.lookup(ref, now + self._deadline, now)
            if pe is None:
                self.counters.linesfilenameonly += 1
            elif pe.fresh_until <= now:
                self.counters.linesstale += 1
        memo = self._memo.get(ref)
        if memo is not None and memo[0] is pe and memo[1] is ne:
            return memo[2]
        pod = pe.value if pe is not None else None
        if pod is not None and ref.pod_uid and pod.uid and pod.uid != ref.pod_uid:
            pod = None  # a recreated pod of the same name: do not lend it our metadata
        ns = ne.value if ne is not None else None
        out = self._dumps(reply_object(ref, pod, ns, self._master_url)) + b"\n"
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._memo[ref] = (pe, ne, out)
        return out

    def _problem(self, kind: str, msg: str, *args: Any) -> None:
        suppressed = self._throttle.allow(kind)
        if suppressed is None:
            return
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        log.warning(msg, *args, extra={"event": kind})
