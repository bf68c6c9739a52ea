"""Keeps the warm-start snapshot: loads it into the store at start, writes it
every ``snapshot_interval`` seconds when something changed, and at exit."""

from __future__ import annotations

import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Any

from kubemeta import internal
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.state import snapshot

log = logging.getLogger("kubemeta.state.snapshot")


@dataclass(frozen=True)
class SnapshotSettings:
    path: str
    identity: dict[str, Any]  # what the metadata in it depends on (snapshot.identity)
    interval: float           # seconds between writes; 0: no snapshot


class SnapshotKeeper:
    def __init__(self, store: MetadataStore, settings: SnapshotSettings, clock: Clock = SYSTEM,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self.path = settings.path
        self._ident = settings.identity
        self._interval = settings.interval
        self._clock = clock
        self._rng = rng or random.Random()
        self._written = -1          # the store generation last written
        self._failing = False       # a write failed; logged once until one works
        self._lock = threading.Lock()

    def load(self) -> int:
        """Seed the store; returns how many pods came from the snapshot."""
        try:
            contents, written = snapshot.decode(snapshot.read(self.path), self._ident)
        except snapshot.SnapshotError as e:
            if os.path.exists(self.path):
                log.warning("ignoring the snapshot %s: %s; starting without it", self.path, e,
                            extra={"event": "snapshot_ignored"})
            else:
                log.info("no snapshot at %s yet; starting without it", self.path,
                         extra={"event": "snapshot_none"})
            return 0

        def spread() -> float:
            # Served at once; refreshed after half to all of their TTL, so that a
            # fleet started together does not ask for everything at the same moment.
            return self._rng.uniform(0.5, 1.0)

        self._store.preload(contents.pods, contents.namespaces, contents.deleted, spread)
        self._written = self._store.generation
        log.info("warm start: %d pods, %d namespaces and %d deleted pods from %s, written "
                 "%.0f s ago", len(contents.pods), len(contents.namespaces),
                 len(contents.deleted), self.path, max(0.0, self._clock.wall() - written),
                 extra={"event": "snapshot_loaded", "pods": len(contents.pods)})
        return len(contents.pods)

    def save(self) -> bool:
        """Write the snapshot if anything changed since the last one; True if written."""
        with self._lock:
            generation = self._store.generation
            if generation == self._written:
                return False
            pods, nss, deleted = self._store.export(self._clock())
            chunks = snapshot.encode_chunks(snapshot.Contents(pods, nss, deleted), self._ident,
                                            self._clock.wall())
            try:
                snapshot.write(self.path, chunks)
            except snapshot.SnapshotError as e:
                self._fail(str(e))
                return False
            except OSError as e:
                self._fail(e.strerror or str(e))
                return False
            self._written = generation
            if self._failing:
                self._failing = False
                log.warning("snapshot %s written again", self.path,
                            extra={"event": "snapshot_ok"})
            return True

    def _fail(self, why: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cannot write the snapshot %s: %s; a restarted helper will start "
                        "without it", self.path, why, extra={"event": "snapshot_failed"})

    def start(self) -> None:
        internal.spawn("kubemeta-snapshot", "the snapshot writer", self.save, self._store.stopped,
                       every=self._interval, wait_first=True)
