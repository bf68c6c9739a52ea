"""The leader's side of a group: answers followers' questions from its store
(which alone talks to the API), and publishes what it knows to the group's
shared file while followers exist."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
from collections.abc import Callable
from typing import Any

from kubemeta import internal, jsonlib
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.model import codec
from kubemeta.share import sharedview
from kubemeta.share.transport import (
    new_socket,
    pointer,
    receive_decoded,
    sealed_view,
    socket_address,
)
from kubemeta.state import snapshot
from kubemeta.state.snapshot import SnapshotError
from kubemeta.wire.sharedproto import (
    Answer,
    Group,
    Request,
    decode_request,
    encode_answer,
)

log = logging.getLogger("kubemeta.share.leading")

PUBLISH_INTERVAL = 0.25  # a change reaches followers within this (plus their poll)
FOLLOWER_TTL = 10.0      # the leader publishes while it heard a hello this recently
HANDLERS = 4             # leader threads answering followers
REBIND_INTERVAL = 5.0    # after a failed bind, try again this much later
VOUCH_INTERVAL = 5.0     # an unchanged view is touched this often (share_view_max_age)


class Leading:
    """The leader's side: answers followers, publishes the shared file."""

    def __init__(self, group: Group, store: MetadataStore, wait: float,
                 clock: Clock = SYSTEM) -> None:
        # The node's health, for ``kubemeta status`` (set by whoever builds this).
        self.status: Callable[[], dict[str, Any]] | None = None
        self._followers: dict[int, float] = {}  # pid: when it last said hello
        self._group = group
        self._store = store
        self._wait = wait
        self._clock = clock
        self._last_hello = -float("inf")
        self._published = -1
        self._requests: queue.Queue[tuple[Request, Any]] = queue.Queue(maxsize=1000)
        self._sock: socket.socket | None = None
        self._bind_at = 0.0         # when to try binding again after a failure
        self._bind_failed = False   # said once per streak
        self._publish_failed = False
        self._vouch_at = 0.0
        self._view_fd: int | None = None  # the sealed view the shared file points to
        self.answered = 0

    def start(self) -> None:
        self._bind()
        internal.spawn("kubemeta-publish", "publishing the shared view", self._publish_round,
                       self._store.stopped, every=PUBLISH_INTERVAL, wait_first=True)

    def _bind(self) -> None:
        """The socket, as a file in state_dir: no other user can take its name,
        as anyone could an abstract one. Holding the lock, a leader owns it: a
        file left there is a dead leader's."""
        path = self._group.address
        sock = new_socket()
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock.bind(socket_address(path))
            os.chmod(path, 0o600)  # followers are of our user
        except OSError as e:
            sock.close()
            self._bind_at = self._clock() + REBIND_INTERVAL
            if not self._bind_failed:
                self._bind_failed = True
                log.error("cannot open the leader's socket %s (%s); followers read the shared "
                          "file only, and it is tried again", path, e.strerror or e,
                          extra={"event": "share_error"})
            return
        if self._bind_failed:
            self._bind_failed = False
            log.warning("the leader's socket %s is open again", path,
                        extra={"event": "share_socket"})
        self._sock = sock
        stopped = self._store.stopped
        internal.spawn("kubemeta-lead-recv", "the leader's socket", self._receive_one, stopped)
        for i in range(HANDLERS):
            internal.spawn(f"kubemeta-lead-{i}", "answering a follower", self._handle_one,
                           stopped)

    def _publish_round(self) -> None:
        if self._sock is None and self._clock() >= self._bind_at:
            self._bind()
        if not self.publish():
            self._vouch()

    def _vouch(self) -> None:
        """Nothing changed: touch the view, so followers know it is current (they
        drop one older than share_view_max_age)."""
        now = self._clock()
        if self._published < 0 or now < self._vouch_at or self._publish_failed:
            return
        self._vouch_at = now + VOUCH_INTERVAL
        with contextlib.suppress(OSError):  # gone or unwritable: the next publish says so
            os.utime(self._group.shared_path)

    def _receive_one(self) -> None:
        assert self._sock is not None
        got = receive_decoded(self._sock, decode_request, self._clock)
        if got is None:
            return
        req = got[0]
        if req.kind == "hello":
            self._last_hello = self._clock()
            if req.name.isdigit():
                self._followers[int(req.name)] = self._last_hello
                if len(self._followers) > 1024:  # pids of followers long gone
                    self._followers = {p: t for p, t in self._followers.items()
                                       if self._last_hello - t <= FOLLOWER_TTL}
            return
        if not got[1]:
            return  # an unbound sender could not receive the answer
        with contextlib.suppress(queue.Full):  # the follower's wait runs out instead
            self._requests.put_nowait((req, got[1]))

    def _handle_one(self) -> None:
        assert self._sock is not None
        req, addr = self._requests.get()
        answer = self.answer(req)
        try:
            self._sock.sendto(encode_answer(answer), addr)
        except (OSError, TypeError, ValueError):
            return  # that follower is gone (or never was one)
        self.answered += 1

    def followers(self) -> list[int]:
        """The pids of the followers heard from lately."""
        now = self._clock()
        return [p for p, t in list(self._followers.items()) if now - t <= FOLLOWER_TTL]

    def answer(self, req: Request) -> Answer:
        if req.kind == "status":
            try:
                return Answer(req.id, "ok", self.status() if self.status else {})
            except Exception as e:  # a status question must not cost the leader
                internal.report("answering a status question", e)
                return Answer(req.id, "unavailable", reason=f"leader: {type(e).__name__}")
        if req.kind == "ready":
            ok = self._store.wait_ready(self._store.STARTUP_GRACE)
            return Answer(req.id, "ok", {}) if ok else Answer(req.id, "unavailable",
                                                               reason="still starting")
        key: Any = (req.namespace, req.name) if req.kind == "pod" else req.name
        try:
            entry = self._store.wait_for(req.kind, key, self._clock() + self._wait)
        except Exception as e:  # never leave a follower without an answer
            internal.report("answering a follower", e)
            return Answer(req.id, "unavailable", reason=f"leader: {type(e).__name__}")
        if entry is None:
            return Answer(req.id, "unavailable", reason="the leader could not ask the API")
        if entry.value is None:
            return Answer(req.id, "missing")
        doc = (codec.pod_doc(entry.value) if req.kind == "pod"
               else codec.ns_doc(entry.value))
        return Answer(req.id, "ok", doc)

    def publish(self, force: bool = False) -> bool:
        """Write the shared file if something changed and followers may exist: one
        said hello lately, or none could (the socket is not open)."""
        heard = self._clock() - self._last_hello <= FOLLOWER_TTL
        if not force and not heard and self._sock is not None:
            return False
        generation = self._store.generation
        if not force and generation == self._published \
                and os.path.exists(self._group.shared_path):
            return False
        published = self._store.now()  # before: all it knew by then is in the view
        pods, nss, deleted = self._store.shared()
        fd = None
        try:
            data = sharedview.encode(pods, nss, deleted, published, jsonlib.dumps)
            if len(data) > snapshot.MAX_BYTES:
                raise SnapshotError(f"the view would be larger than {snapshot.MAX_BYTES} bytes")
            fd = sealed_view(data)
            snapshot.write(self._group.shared_path, pointer(fd), durable=False)
        except (OSError, SnapshotError) as e:
            if fd is not None:
                os.close(fd)
            if not self._publish_failed:  # once per streak, not every round
                self._publish_failed = True
                log.warning("cannot publish to %s: %s; followers serve the last view until "
                            "it is too old (see share_view_max_age)", self._group.shared_path,
                            e, extra={"event": "share_error"})
            return False
        if self._publish_failed:
            self._publish_failed = False
            log.warning("publishing to %s again", self._group.shared_path,
                        extra={"event": "share_published"})
        # Followers that mapped the last view keep it; new ones open this one.
        old, self._view_fd = self._view_fd, fd
        if old is not None:
            os.close(old)
        self._published = generation
        self._vouch_at = self._clock() + VOUCH_INTERVAL
        return True
