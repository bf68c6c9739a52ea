"""One line in, one reply out: the per-line logic, free of I/O.

``reply`` never raises and always returns exactly one newline-terminated JSON
object. Replies are serialized once per (pod, container) and metadata version,
and reused for every later line of that container.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubemeta import jsonlib
from kubemeta.cache.store import Counters, MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import RecordError
from kubemeta.model.identify import Identifier, PodRef
from kubemeta.model.logline import parse_cri, parse_json_log
from kubemeta.model.replyparts import PodParts, ns_part, pod_parts, splice
from kubemeta.model.schema import reply_object, same_pod
from kubemeta.share.sharedview import View, ViewSlot
from kubemeta.wire.framing import Frame, _Oversize
from kubemeta.wire.record import RecordFields, RecordReader

log = logging.getLogger("kubemeta.shell.enricher")

EMPTY = b"{}\n"
_REPLY_HEAD = b'{"$!":{'
_REPLY_TAIL = b"}}\n"
_HEAD_LEN, _TAIL_LEN = len(_REPLY_HEAD), len(_REPLY_TAIL)


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
    """Per-line logic for both modes: the mmexternal reply and the omprog sink line.

    A record yields up to three kinds of ``$!`` members: ``kubernetes`` and
    ``docker`` (serialized once per pod and container, reused while the
    metadata is unchanged), the docker-style ``log``/``stream``/``time`` of a
    CRI record, and the application's own JSON under ``merge_log_key``.
    """

    MEMO_SIZE = 4096
    # What kubemeta itself sets in $!, in reply order.
    POD_KEYS = ("kubernetes", "docker")
    CRI_KEYS = ("log", "stream", "time")

    def __init__(self, reader: RecordReader, identifier: Identifier,
                 store: MetadataStore | None, master_url: str, deadline: float,
                 clock: Clock = SYSTEM,
                 dumps: Callable[[Any], bytes] = jsonlib.dumps,
                 counters: Counters | None = None, parse_cri: bool = True,
                 merge_log_key: str | None = None,
                 loads: Callable[[bytes], Any] = jsonlib.loads,
                 shared: ViewSlot | None = None, name_records: bool = False) -> None:
        self._reader = reader
        self._name_records = name_records
        self._identify = identifier.identify
        self._store = store
        self._master_url = master_url
        self._deadline = deadline
        self._clock = clock
        self._dumps = dumps
        self._loads = loads
        self._parse_cri = parse_cri
        self._merge_key = merge_log_key
        self._merge_prefix = dumps(merge_log_key) + b":" if merge_log_key else b""
        self._memo: dict[PodRef, tuple[Any, Any, bytes]] = {}
        self._pod_reply = EMPTY  # the full reply for the last _pod_members call
        self._shared = shared
        # A follower's one memo: the last reply spliced from a view, for the next
        # line of the same container (view, ref, fresh until, reply, of a deleted pod).
        self._last: tuple[View, PodRef, float, bytes, bool] | None = None
        self._throttle = Throttle(clock)
        self.counters = store.counters if store is not None else (counters or Counters())

    def hurry(self) -> None:
        """From now on no line waits for the API: rsyslog is shutting down (it gave
        up on a reply), and stops a worker whose action is still busy after a second
        (queue.timeoutActionCompletion), losing the batch in hand."""
        self._deadline = 0.0

    def reply(self, frame: Frame) -> bytes:
        """The mmexternal reply to one line: ``{"$!":{...}}\\n``, or ``{}\\n``. Never raises."""
        try:
            src = self._read(frame, "answered {}")
            if src is None:
                return EMPTY
            members, keys = self._members(src, whole=True)
            if keys is self.POD_KEYS:
                out = self._pod_reply  # the common case: the whole reply, built once
            elif not members:
                out = EMPTY
            else:
                out = _REPLY_HEAD + members + _REPLY_TAIL
            if self._name_records and src.offset is not None and src.filename is not None:
                return self._named(out, src.filename, src.offset)
            return out
        except Exception as e:  # the pipe must stay in step whatever happens
            self._problem("bug", "could not enrich a record (%s: %s); answered {}",
                          type(e).__name__, e)
            return EMPTY

    def _named(self, reply: bytes, filename: str, offset: str) -> bytes:
        """``reply`` with ``"kubemeta_of":{"file":...,"offset":...}`` added: the
        shipped snippets keep a reply only when it names the record it is read for."""
        mark = (b'"kubemeta_of":{"file":' + self._dumps(filename) + b',"offset":'
                + self._dumps(offset) + b"}")
        if reply is EMPTY:
            return _REPLY_HEAD + mark + _REPLY_TAIL
        return reply[:-_TAIL_LEN] + b"," + mark + _REPLY_TAIL

    def enriched(self, frame: Frame) -> bytes | None:
        """The record's ``$!`` tree with kubemeta's members set, as one JSON line.

        This is what the omprog sink receives: after ``mmjsonparse`` it is the
        same ``$!`` tree the mmexternal setup produces. A record with no log text
        keeps its message under ``msg``, so no text is lost. A line that is not
        JSON is passed on as it is. None only for a line too long to have been
        kept (longer than max_line_bytes). Never raises.
        """
        raw = None if isinstance(frame, _Oversize) else frame + b"\n"
        src = self._read(frame, "dropped" if raw is None else "passed on as it is")
        if src is None:
            return raw
        try:
            members, keys = self._members(src)
            tree = src.tree or {}
            rest = {k: v for k, v in tree.items() if k not in keys} if keys else dict(tree)
            if "log" not in keys and "log" not in rest and src.msg is not None:
                rest.setdefault("msg", src.msg)
            head = self._dumps(rest)[:-1]
            if members:
                return head + (b"," if len(head) > 1 else b"") + members + b"}\n"
            return head + b"}\n"
        except Exception as e:
            self._problem("bug", "could not enrich a record (%s: %s); passed on as it is",
                          type(e).__name__, e)
            return raw

    def _read(self, frame: Frame, outcome: str) -> RecordFields | None:
        """The record's fields, or None (logged, with ``outcome``) when there are none."""
        if isinstance(frame, _Oversize):
            self._problem("oversize", "a record longer than max_line_bytes was %s", outcome)
            return None
        try:
            return self._reader.read(frame)
        except RecordError as e:
            self._problem("bad_record", "unreadable record from rsyslog (%s); %s", e, outcome)
            return None

    def _members(self, src: RecordFields, whole: bool = False) -> tuple[bytes, tuple[str, ...]]:
        """The serialized ``$!`` members kubemeta sets for one record, and their keys.

        With ``whole``, a record that gets only the pod's members gets no bytes
        here: its reply is ``_pod_reply``, whole, as it was built."""
        out: list[bytes | memoryview] = []
        keys: tuple[str, ...] = ()
        pod = self._pod_members(src)
        if pod is not None:
            keys = self.POD_KEYS
        text = src.log
        if self._parse_cri and text is None and src.msg is not None:
            cri = parse_cri(src.msg)
            if cri is not None:
                self.counters.linescri += 1
                out.append(self._dumps(cri._asdict())[1:-1])
                keys += self.CRI_KEYS
                text = cri.log
        if self._merge_key is not None and text is not None:
            obj = parse_json_log(text, self._loads)
            if obj is not None:
                try:
                    merged = self._merge_prefix + self._dumps(obj)
                except (ValueError, TypeError, OverflowError):
                    pass  # a field that cannot be written is left out alone, not the reply
                else:
                    out.append(merged)
                    keys += (self._merge_key,)
        if pod is not None:
            if whole and keys is self.POD_KEYS:
                return b"", keys
            # A view, not a copy: the join below copies the bytes once.
            out.insert(0, memoryview(pod)[_HEAD_LEN:-_TAIL_LEN])
        return b",".join(out), keys

    def _pod_members(self, src: RecordFields) -> bytes | None:
        """The reply carrying ``"kubernetes":{...},"docker":{...}``, memoised per
        container and metadata version; also left in ``_pod_reply``. Only the whole
        reply is kept: the members alone are a slice of it."""
        ref = self._identify(src)
        if ref is None:
            return None
        self.counters.recordseen += 1
        if self._shared is not None:
            view = self._shared.view
            if view is not None and ref.valid_for_api():
                reply = self._from_view(ref, view)
                last = self._last
                # The memo holds only checked replies: a repeat is not scanned again.
                if (last is not None and reply is last[3]) or reply.count(b"\n") == 1:
                    self._pod_reply = reply
                    return reply
                # Only a corrupt or planted view makes two lines of one reply, which
                # would put rsyslog's pipe out of step: drop it, serve from the store.
                self._shared.view = None
                self._problem("share_error", "the shared view gave a reply of %d lines; "
                              "not serving from it", reply.count(b"\n"))
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
            self._pod_reply = memo[2]
            return memo[2]
        pod = pe.value if pe is not None else None
        if pod is not None and not same_pod(ref, pod.uid):
            pod = None
        ns = ne.value if ne is not None else None
        out = self._dumps(reply_object(ref, pod, ns, self._master_url)["$!"])[1:-1]
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._pod_reply = _REPLY_HEAD + out + _REPLY_TAIL
        self._memo[ref] = (pe, ne, self._pod_reply)
        return self._pod_reply

    def _from_view(self, ref: PodRef, view: View) -> bytes:
        """A follower's reply, spliced from the leader's view: no pod is decoded,
        and nothing but the last reply is kept. What the view lacks yet is asked
        of the leader through the store, within the line's deadline."""
        now = self._clock()
        c = self.counters
        last = self._last
        if last is not None and last[0] is view and last[1] == ref and now < last[2]:
            c.podcachehits += 1
            c.namespacecachehits += 1
            if last[4]:
                c.linesdeletedpod += 1
            return last[3]
        pod: tuple[float, PodParts] | None = None
        if view.has_deleted and (ref.pod_uid is not None or ref.container_id is not None):
            pod = view.deleted(ref.pod_uid, ref.container_id)
        deleted = pod is not None
        if pod is None:
            pod = view.pod(ref.namespace, ref.pod)
        ns = view.namespace(ref.namespace)
        if pod is None or ns is None:
            assert self._store is not None
            pe, ne = self._store.lookup(ref, now + self._deadline, now)
            newer = self._shared.view if self._shared is not None else None
            if newer is not None and newer is not view:
                # Published while this line waited, the answer may have moved there.
                if pod is None and pe is None:
                    pod = newer.pod(ref.namespace, ref.pod)
                if ns is None and ne is None:
                    ns = newer.namespace(ref.namespace)
            if pod is None and pe is None:
                c.linesfilenameonly += 1
            parts = pod[1] if pod is not None else (
                pod_parts(pe.value, self._dumps) if pe is not None and pe.value else None)
            members = ns[1] if ns is not None else (
                ns_part(ne.value, self._dumps) if ne is not None and ne.value else None)
            return splice(ref, parts, members, self._master_url, self._dumps)
        c.podcachehits += 1
        c.namespacecachehits += 1
        fresh = ns[0]
        if deleted:
            c.linesdeletedpod += 1
        else:
            fresh = min(fresh, pod[0])
            if pod[0] <= now:
                c.linesstale += 1
        if fresh <= now:
            assert self._store is not None
            if not deleted and pod[0] <= now:
                self._store.refresh("pod", (ref.namespace, ref.pod))
            if ns[0] <= now:
                self._store.refresh("ns", ref.namespace)
        reply = splice(ref, pod[1], ns[1], self._master_url, self._dumps)
        if reply.count(b"\n") == 1:  # a bad one is never memoised (see _pod_members)
            self._last = (view, ref, fresh, reply, deleted)
        return reply

    def _problem(self, kind: str, msg: str, *args: Any) -> None:
        suppressed = self._throttle.allow(kind)
        if suppressed is None:
            return
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        log.warning(msg, *args, extra={"event": kind})
