"""Several helpers on one node, one view of the cluster: the I/O of leading and
following (the names and messages are in sharedproto).

- The helper holding the group's lock leads: it alone talks to the API (lookups,
  lists, watches), publishes what it knows to the group's shared file while
  followers exist, and answers their questions on its socket.
- The others follow: they map the shared file (a sharedview) whenever it
  changes and splice their replies from it, holding no metadata of their own;
  they ask the leader for a pod it does not have yet. They never import the
  API client. Those questions go through a store like a leader's, so a line
  waits for the leader no longer than for the API: at most the per-line deadline.
- A follower waits on the lock in a thread of its own. When the leader dies
  the kernel releases it, and the follower takes the lead without stopping: it
  serves from the last view while it seeds its store from it and builds its
  API client.

Datagrams are accepted only from processes of the same user (SCM_CREDENTIALS):
the abstract socket namespace has no file permissions.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import mmap
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from kubemeta import internal, jsonlib
from kubemeta.cache.store import MetadataStore, Source
from kubemeta.errors import ApiError, ApiNotFound, ApiUnreachable
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.share import sharedview
from kubemeta.share.sharedview import ViewSlot
from kubemeta.state import snapshot
from kubemeta.state.snapshot import SnapshotError
from kubemeta.wire.sharedproto import (
    MAX_DATAGRAM,
    Answer,
    Group,
    MessageError,
    Request,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)

log = logging.getLogger("kubemeta.share.sharing")

PUBLISH_INTERVAL = 0.25  # a change reaches followers within this (plus their poll)
POLL_INTERVAL = 0.1      # followers look at the shared file's stamp this often
HELLO_INTERVAL = 2.0     # followers say they exist this often
FOLLOWER_TTL = 10.0      # the leader publishes while it heard a hello this recently
HANDLERS = 4             # leader threads answering followers
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def open_lock(group: Group) -> int:
    """The lock file's descriptor. Raises OSError when state_dir is unusable."""
    os.makedirs(os.path.dirname(group.lock_path), mode=0o750, exist_ok=True)
    return os.open(group.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)


def try_lead(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    return sock


def _receive(sock: socket.socket) -> tuple[bytes, Any] | None:
    """One datagram from a process of our own user; None for anyone else's."""
    data, anc, _, addr = sock.recvmsg(MAX_DATAGRAM + 1, socket.CMSG_SPACE(_CREDS.size))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS \
                and len(payload) >= _CREDS.size:
            _, uid, _ = _CREDS.unpack(payload[:_CREDS.size])
            if uid == os.getuid():
                return data, addr
    return None


class Leading:
    """The leader's side: answers followers, publishes the shared file."""

    def __init__(self, group: Group, store: MetadataStore, wait: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._group = group
        self._store = store
        self._wait = wait
        self._clock = clock
        self._last_hello = -float("inf")
        self._published = -1
        self._requests: queue.Queue[tuple[Request, Any]] = queue.Queue(maxsize=1000)
        self._sock: socket.socket | None = None
        self.answered = 0
        self.publications = 0

    def start(self) -> None:
        sock = _socket()
        try:
            sock.bind(self._group.address)
        except OSError as e:
            sock.close()
            log.error("cannot open the leader's socket (%s); followers will only read the "
                      "shared file", e.strerror or e, extra={"event": "share_error"})
        else:
            self._sock = sock
            threading.Thread(target=self._receive_loop, name="kubemeta-lead-recv",
                             daemon=True).start()
            for i in range(HANDLERS):
                threading.Thread(target=self._handle_loop, name=f"kubemeta-lead-{i}",
                                 daemon=True).start()
        threading.Thread(target=self._publish_loop, name="kubemeta-publish",
                         daemon=True).start()

    def _receive_loop(self) -> None:
        assert self._sock is not None
        while not self._store.stopped.is_set():
            try:
                got = _receive(self._sock)
                if got is None:
                    continue
                req = decode_request(got[0])
            except MessageError:
                continue
            except OSError:
                time.sleep(0.1)
                continue
            if req.kind == "hello":
                self._last_hello = self._clock()
                continue
            if not got[1]:
                continue  # an unbound sender could not receive the answer
            with contextlib.suppress(queue.Full):  # the follower's wait runs out instead
                self._requests.put_nowait((req, got[1]))

    def _handle_loop(self) -> None:
        assert self._sock is not None
        while True:
            req, addr = self._requests.get()
            answer = self.answer(req)
            try:
                self._sock.sendto(encode_answer(answer), addr)
            except (OSError, TypeError, ValueError):
                continue  # that follower is gone (or never was one)
            self.answered += 1

    def answer(self, req: Request) -> Answer:
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
        doc = (snapshot.pod_doc(entry.value) if req.kind == "pod"
               else snapshot.ns_doc(entry.value))
        return Answer(req.id, "ok", doc)

    def _publish_loop(self) -> None:
        while not self._store.stopped.wait(PUBLISH_INTERVAL):
            try:
                self.publish()
            except Exception:  # the publisher must never die
                log.exception("publishing the shared view failed", extra={"event": "bug"})

    def publish(self, force: bool = False) -> bool:
        """Write the shared file if followers exist and something changed."""
        if not force and self._clock() - self._last_hello > FOLLOWER_TTL:
            return False
        generation = self._store.generation
        if not force and generation == self._published \
                and os.path.exists(self._group.shared_path):
            return False
        published = self._store.now()  # before: all it knew by then is in the view
        pods, nss, deleted = self._store.shared()
        try:
            snapshot.write(self._group.shared_path,
                           sharedview.encode(pods, nss, deleted, published, jsonlib.dumps),
                           durable=False)
        except (OSError, SnapshotError) as e:
            log.warning("cannot publish to %s: %s", self._group.shared_path, e,
                        extra={"event": "share_error"})
            return False
        self._published = generation
        self.publications += 1
        return True


class LeaderClient(Source):
    """A follower's source: the leader, over its socket."""

    def __init__(self, group: Group, timeout: float) -> None:
        self._group = group
        self._timeout = timeout
        self._sock = _socket()
        self._sock.bind("")  # an automatic abstract address the leader answers to
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, list[Any]] = {}
        threading.Thread(target=self._receive_loop, name="kubemeta-follow-recv",
                         daemon=True).start()

    def hello(self) -> bool:
        try:
            self._sock.sendto(encode_request(Request(0, "hello")), self._group.address)
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
            return snapshot.pod_meta(meta)
        except (KeyError, TypeError, ValueError) as e:
            raise ApiUnreachable(f"leader: a malformed answer ({e})") from e

    def namespace(self, name: str) -> NamespaceMeta:
        meta = self._ask(Request(next(self._ids), "ns", "", name))
        try:
            return snapshot.ns_meta(meta)
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
        end = time.monotonic() + self.SEND_PATIENCE
        while True:
            try:
                self._sock.sendto(data, self._group.address)
                return
            except (ConnectionRefusedError, FileNotFoundError) as e:
                # Nobody listening: a leader starting (or gone, and its successor
                # starting). This runs in a lookup worker, never in a line's path.
                if time.monotonic() >= end:
                    raise ApiUnreachable("no leader helper to ask") from e
                time.sleep(0.02)
            except OSError as e:
                raise ApiUnreachable(f"cannot reach the leader helper: {e.strerror}") from e

    def _receive_loop(self) -> None:
        while True:
            try:
                got = _receive(self._sock)
                if got is None:
                    continue
                answer = decode_answer(got[0])
            except MessageError:
                continue
            except OSError:
                time.sleep(0.1)
                continue
            with self._lock:
                waiter = self._waiting.get(answer.id)
            if waiter is not None:
                waiter[0].append(answer)
                waiter[1].set()


class RoleSource(Source):
    """The store's source: the leader while following, the API once leading."""

    def __init__(self, follower: LeaderClient) -> None:
        self._current: Source = follower

    def promote(self, api: Source) -> None:
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
                 lock_fd: int, on_lead: Callable[[], None]) -> None:
        self._group = group
        self._store = store
        self._client = client
        self._fd = lock_fd
        self._on_lead = on_lead
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # a view loaded as the lead is taken is not kept
        self._leading = False
        self.slot = ViewSlot()
        self.loads = 0

    def start(self) -> None:
        threading.Thread(target=self._feed_loop, name="kubemeta-follow", daemon=True).start()
        threading.Thread(target=self._wait_lock, name="kubemeta-lock", daemon=True).start()

    def _feed_loop(self) -> None:
        next_hello = 0.0
        while not self._leading and not self._store.stopped.is_set():
            now = time.monotonic()
            if now >= next_hello:
                # Until a leader hears it, say it again at every poll.
                next_hello = now + (HELLO_INTERVAL if self._client.hello() else 0.0)
            try:
                self.load_if_changed()
            except Exception:  # the feed must not die
                log.exception("following the leader failed", extra={"event": "bug"})
            self._store.stopped.wait(POLL_INTERVAL)

    def load_if_changed(self) -> bool:
        path = self._group.shared_path
        try:
            st = os.stat(path)
        except OSError:
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        try:
            view = sharedview.View(_map(path))
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
        # What the leader told before it published is in the view now, or gone.
        self._store.forget_known(view.published)
        self.loads += 1
        log.debug("loaded the shared view (%d entries)", view.keys)
        return True

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
        except Exception:
            log.exception("taking the lead failed", extra={"event": "bug"})


def _map(path: str) -> mmap.mmap:
    """The file, mapped read-only: shared with every helper that maps it. A file
    replaced later stays mapped as it was until its last reader lets go."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > snapshot.MAX_BYTES:
            raise ValueError(f"larger than {snapshot.MAX_BYTES} bytes")
        return mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
