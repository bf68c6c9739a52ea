"""Table mode's I/O: keep rsyslog's lookup table in step with what is known.

Each tick looks at the container log files (a directory listing) and at the
store's generation. When either moved, the table is built again (model.table);
when its bytes changed, it replaces the file atomically and asks rsyslog to
reload it by appending a line to the reload file, which the shipped snippet
tails into a ``reload_lookup_table`` statement. Writes are at least
``min_interval`` apart, so a burst of changes costs a few reloads, not one each.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kubemeta import files, internal, jsonlib
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import Clock
from kubemeta.model import table
from kubemeta.model.identify import Identifier
from kubemeta.model.replyparts import PodParts, ns_part, pod_parts, splice
from kubemeta.model.schema import same_pod
from kubemeta.share.sharedview import ViewSlot
from kubemeta.wire.record import RecordFields

log = logging.getLogger("kubemeta.shell.tablekeeper")

RELOAD_LINE = b"reload\n"
RELOAD_FILE_MAX = 64 * 1024  # then truncated: imfile (reopenOnTruncate) reads it anew
BURST_GAP = 5.0  # a write this long after the last starts a new burst, logged once


@dataclass(frozen=True)
class TableSettings:
    table_file: str
    reload_file: str
    log_globs: tuple[str, ...]
    max_bytes: int
    min_interval: float  # between two writes
    tick: float = 0.1


class TableSource:
    """A log file's reply, from what this process knows: the store when it leads,
    the leader's view when it follows. None: not known well enough for the table
    (its lines go to the helper, which waits for the pod within its deadline)."""

    def __init__(self, identifier: Identifier, store: MetadataStore, shared: ViewSlot | None,
                 following: Callable[[], bool], master_url: str) -> None:
        self._identify = identifier.identify
        self._store = store
        self._shared = shared
        self._following = following
        self._master_url = master_url
        self._dumps = jsonlib.dumps

    @property
    def generation(self) -> tuple[int, float]:
        """Moves on when a table built now could differ: what this process knows,
        or (following) the leader's view."""
        view = self._shared.view if self._shared is not None and self._following() else None
        return self._store.generation, view.published if view is not None else -1.0

    def reply(self, filename: str) -> bytes | None:
        ref = self._identify(RecordFields(filename, None, None))
        if ref is None or not ref.valid_for_api():
            return None
        view = self._shared.view if self._shared is not None and self._following() else None
        parts: PodParts | None = None
        members: bytes | None = None
        if view is not None:
            pod = None
            if view.has_deleted and (ref.pod_uid is not None or ref.container_id is not None):
                pod = view.deleted(ref.pod_uid, ref.container_id)
            pod = pod or view.pod(ref.namespace, ref.pod)
            ns = view.namespace(ref.namespace)
            parts = pod[1] if pod is not None else None
            members = ns[1] if ns is not None else None
        if parts is None or members is None:
            pe, ne = self._store.peek(ref)
            if parts is None and pe is not None and pe.value is not None:
                parts = pod_parts(pe.value, self._dumps)
            if members is None and ne is not None and ne.value is not None:
                members = ns_part(ne.value, self._dumps)
        if parts is None or members is None or not same_pod(ref, parts.uid):
            return None
        return splice(ref, parts, members, self._master_url, self._dumps)


class TableKeeper:
    def __init__(self, s: TableSettings, source: TableSource, clock: Clock) -> None:
        self._s = s
        self._source = source
        self._clock = clock
        self._digest: bytes | None = None  # of the table last written
        self._seen: tuple[tuple[int, float], tuple[str, ...]] | None = None
        self._last_write = -1e18
        self._left_out = 0
        self._failing = False
        self.writes = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._s.tick):
            self.tick()

    def tick(self) -> None:
        """``step``, and whatever goes wrong is reported: the table's loop must not die."""
        try:
            self.step()
        except Exception as e:
            internal.report("keeping the lookup table", e)

    def step(self) -> bool:
        """One tick; True when the table was written. The table is built twice when
        it changed, never held whole: once for its digest, once into the file."""
        names = tuple(sorted(n for g in self._s.log_globs for n in glob.glob(g)))
        seen = (self._source.generation, names)
        now = self._clock()
        if seen == self._seen or now - self._last_write < self._s.min_interval:
            return False
        counts, digest = self._digest_of(names)
        if not counts.entries and names and self._digest is None \
                and os.path.exists(self._s.table_file):
            # Just started and knowing nothing yet (no snapshot, no list): the last
            # run's table serves rsyslog better than an empty one. Look again next tick.
            return False
        self._seen = seen
        self._note_size(counts)
        if digest == self._digest:
            return False
        written = table.Counts()
        hasher = hashlib.sha256()

        def hashed() -> Iterator[bytes]:
            for chunk in table.chunks(self._known(names), self._s.max_bytes, jsonlib.dumps,
                                      written):
                hasher.update(chunk)
                yield chunk

        try:
            files.replace(self._s.table_file, hashed(), mode=0o640)
            self._ask_reload()
        except OSError as e:
            if not self._failing:
                self._failing = True
                log.error("cannot write the lookup table %s or ask rsyslog to reload it: %s; "
                          "rsyslog keeps its current table, and lines it lacks go to the "
                          "helper", self._s.table_file, e, extra={"event": "table_error"})
            self._seen = None  # try again next tick
            return False
        if self._failing:
            self._failing = False
            log.warning("writing the lookup table %s again", self._s.table_file,
                        extra={"event": "table_written"})
        if now - self._last_write > BURST_GAP:
            log.info("updating the lookup table %s: %d entries", self._s.table_file,
                     written.entries, extra={"event": "table_written"})
        self._digest = hasher.digest()
        self._last_write = now
        self.writes += 1
        return True

    def _known(self, names: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
        for name in names:
            reply = self._source.reply(name)
            if reply is not None:
                yield name, reply

    def _digest_of(self, names: tuple[str, ...]) -> tuple[table.Counts, bytes]:
        counts = table.Counts()
        hasher = hashlib.sha256()
        for chunk in table.chunks(self._known(names), self._s.max_bytes, jsonlib.dumps, counts):
            hasher.update(chunk)
        return counts, hasher.digest()

    def _note_size(self, counts: table.Counts) -> None:
        if counts.left_out and not self._left_out:
            log.warning("the lookup table would be larger than table_max_bytes (%d): %d "
                        "containers left out, their lines go to the helper",
                        self._s.max_bytes, counts.left_out, extra={"event": "table_full"})
        elif self._left_out and not counts.left_out:
            log.info("the lookup table holds every container again",
                     extra={"event": "table_full"})
        self._left_out = counts.left_out

    def _ask_reload(self) -> None:
        path = self._s.reload_file
        try:
            if os.lstat(path).st_size > RELOAD_FILE_MAX:
                files.replace(path, b"", mode=0o640)
        except FileNotFoundError:
            pass
        files.append(path, RELOAD_LINE)
