"""The followers' side of a group: they map the shared file (a sharedview)
whenever it changes and splice their replies from it, holding no metadata of
their own; they ask the leader for a pod it does not have yet, through a store
like a leader's, so a line waits for the leader no longer than for the API.
They never import the API client. A follower waits on the lock in a thread of
its own; when the leader dies the kernel releases it, and the follower takes
the lead without stopping (see roles)."""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from kubemeta import internal
from kubemeta.cache.store import Fetcher, MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import ApiError, ApiNotFound, ApiUnreachable
from kubemeta.model import codec
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.share import sharedview
from kubemeta.share.sharedview import ViewSlot
from kubemeta.share.transport import map_view, new_socket, receive_decoded, socket_address
from kubemeta.wire.sharedproto import (
    Answer,
    Group,
    Request,
    decode_answer,
    encode_request,
)

log = logging.getLogger("kubemeta.share.following")

POLL_INTERVAL = 0.1      # followers look at the shared file's stamp this often
HELLO_INTERVAL = 2.0     # followers say they exist this often


class LeaderClient(Fetcher):
    """A follower's source: the leader, over its socket."""

    def __init__(self, group: Group, timeout: float, clock: Clock = SYSTEM) -> None:
        self._group = group
        self._clock = clock
        self._timeout = timeout
        self._sock = new_socket()
        self._sock.bind("")  # an automatic abstract address the leader answers to
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, list[Any]] = {}
        internal.spawn("kubemeta-follow-recv", "the follower's socket", self._receive_one,
                       threading.Event())

    def hello(self) -> bool:
        try:
            self._sock.sendto(encode_request(Request(0, "hello", name=str(os.getpid()))),
                            socket_address(self._group.address))
        except OSError:
            return False
        return True

    def wait_ready(self, timeout: float) -> bool:
        """Until the leader can ask the API, or ``timeout``: a follower starting
        with its leader waits for it as a lone helper waits for its client."""
        saved, self._timeout = self._timeout, timeout
        try:
            self._ask(Request(next(self._ids), "ready"))
        except ApiError:
            return False
        finally:
            self._timeout = saved
        return True

    def pod(self, namespace: str, name: str) -> PodMeta:
        meta = self._ask(Request(next(self._ids), "pod", namespace, name))
        try:
            return codec.pod_meta(meta)
        except (KeyError, TypeError, ValueError) as e:
            raise ApiUnreachable(f"leader: a malformed answer ({e})") from e

    def namespace(self, name: str) -> NamespaceMeta:
        meta = self._ask(Request(next(self._ids), "ns", "", name))
        try:
            return codec.ns_meta(meta)
        except (TypeError, ValueError) as e:
            raise ApiUnreachable(f"leader: a malformed answer ({e})") from e

    def _ask(self, req: Request) -> dict[str, Any]:
        slot: list[Any] = []
        done = threading.Event()
        with self._lock:
            self._waiting[req.id] = [slot, done]
        try:
            self._send(encode_request(req))
            if not done.wait(self._timeout):
                raise ApiUnreachable("the leader helper did not answer")
        finally:
            with self._lock:
                self._waiting.pop(req.id, None)
        answer: Answer = slot[0]
        if answer.status == "missing":
            raise ApiNotFound("404 Not Found (said the leader)", 404)
        if answer.status != "ok" or answer.meta is None:
            raise ApiUnreachable(f"leader: {answer.reason or 'unavailable'}")
        return answer.meta

    SEND_PATIENCE = 2.0  # a leader holds the lock before its socket is open

    def _send(self, data: bytes) -> None:
        end = self._clock() + self.SEND_PATIENCE
        while True:
            try:
                self._sock.sendto(data, socket_address(self._group.address))
                return
            except (ConnectionRefusedError, FileNotFoundError) as e:
                # Nobody listening: a leader starting (or gone, and its successor
                # starting). This runs in a lookup worker, never in a line's path.
                if self._clock() >= end:
                    raise ApiUnreachable("no leader helper to ask") from e
                self._clock.sleep(0.02)
            except OSError as e:
                raise ApiUnreachable(f"cannot reach the leader helper: {e.strerror}") from e

    def _receive_one(self) -> None:
        got = receive_decoded(self._sock, decode_answer, self._clock)
        if got is None:
            return
        answer = got[0]
        with self._lock:
            waiter = self._waiting.get(answer.id)
        if waiter is not None:
            waiter[0].append(answer)
            waiter[1].set()


class RoleFetcher(Fetcher):
    """The store's fetcher: the leader while following, the API once leading."""

    def __init__(self, follower: LeaderClient) -> None:
        self._current: Fetcher = follower

    def promote(self, api: Fetcher) -> None:
        self._current = api

    def pod(self, namespace: str, name: str) -> PodMeta:
        return self._current.pod(namespace, name)

    def namespace(self, name: str) -> NamespaceMeta:
        return self._current.namespace(name)

    def on_unauthorized(self) -> None:
        self._current.on_unauthorized()


class Following:
    """A follower's feed: maps the shared view when it changes (into ``slot``,
    where its lines read it), says hello, and waits for the lock; ``on_lead``
    runs in that thread once it holds it, and the feed stops."""

    def __init__(self, group: Group, store: MetadataStore, client: LeaderClient,
                 lock_fd: int, on_lead: Callable[[], None], clock: Clock = SYSTEM,
                 max_age: float = 60.0) -> None:
        self._group = group
        self._clock = clock
        self._max_age = max_age  # a view the leader has not vouched for this long is dropped
        self._store = store
        self._client = client
        self._fd = lock_fd
        self._on_lead = on_lead
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # a view loaded as the lead is taken is not kept
        self._leading = False
        self.slot = ViewSlot()
        self._next_hello = 0.0
        self._too_old = False
        self.loads = 0

    def start(self) -> None:
        internal.spawn("kubemeta-follow", "following the leader", self._feed_one,
                       self._store.stopped, every=POLL_INTERVAL, until=lambda: self._leading)
        threading.Thread(target=self._wait_lock, name="kubemeta-lock", daemon=True).start()

    def _feed_one(self) -> None:
        now = self._clock()
        if now >= self._next_hello:
            # Until a leader hears it, say it again at every poll.
            self._next_hello = now + (HELLO_INTERVAL if self._client.hello() else 0.0)
        self.load_if_changed()

    def load_if_changed(self) -> bool:
        path = self._group.shared_path
        try:
            st = os.stat(path)
        except OSError:
            return False
        age = self._clock.wall() - st.st_mtime
        if age > self._max_age:
            self._drop_old(age)
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        try:
            view = sharedview.View(map_view(path))
        except (OSError, ValueError, sharedview.ViewError) as e:
            log.debug("shared view %s unusable: %s", path, e)
            return False
        with self._lock:
            if self._leading:
                return False
            self._stamp = stamp
            first = self.slot.view is None
            self.slot.view = view  # the old mapping goes with its last reader
        if first:
            log.info("serving from the view this node's leading helper shares (%d entries)",
                     view.keys, extra={"event": "share_view"})
            self._too_old = False
        # What the leader told before it published is in the view now, or gone.
        self._store.forget_known(view.published)
        self.loads += 1
        log.debug("loaded the shared view (%d entries)", view.keys)
        return True

    def _drop_old(self, age: float) -> None:
        """The leader vouches for its view (it publishes, or touches it) every
        few seconds; one it has not for ``max_age`` may be missing any change
        since, watched entries included. Lines ask the leader instead."""
        with self._lock:
            had = self.slot.view is not None
            self.slot.view = None
            self._stamp = None  # a fresh one is loaded again whatever its stamp
        if had:
            self._store.counters.sharedviewtooold += 1
        if not self._too_old:
            self._too_old = True
            log.warning("the shared view %s is %.0f s old, older than share_view_max_age; "
                        "asking the leading helper for each pod until it is fresh again",
                        self._group.shared_path, age, extra={"event": "share_view_old"})

    def _wait_lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # until the leader is gone
        except OSError as e:
            log.error("cannot wait for the group's lock: %s; following only",
                      e.strerror or e, extra={"event": "share_error"})
            return
        with self._lock:
            self._leading = True
        try:
            self._on_lead()
        except ApiError as e:
            log.error("taking the lead failed: %s", e, extra={"event": "share_error"})
        except Exception as e:
            internal.report("taking the lead", e)
