"""A deadline for a whole request, the answer's headers included.

urllib3's read timeout bounds each receive: a server that trickles its answer
one byte at a time, each within the read timeout, holds the request (and a
lookup worker) for as long as it likes. The body is read in kubemeta's own
loop, which checks the deadline between reads; the status line and headers
are read inside http.client. So while a request with a deadline waits for its
answer, its socket is watched here, and one thread shuts it down when the
deadline passes: the blocked read returns at once, and the request fails.

The connection classes find the deadline in the calling thread (``bound``):
the pool's own code runs between the caller and the socket.

They also tell a connection the server closed while it lay in the pool from a
server that fails. A server may close a kept-alive connection at any moment
(an idle timeout, the end of a watch), and the close can cross the next request
on the wire: that request is answered by a reset or by nothing at all. HTTP lets
a client send an idempotent request again on a new connection then (RFC 9112
9.3.1), as urllib3 would with its retries on, which kubemeta keeps off to count
every failure itself. ``closed_on_reuse`` says when it may.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubemeta.clock import Clock

_local = threading.local()


@dataclass(order=True)
class Watched:
    deadline: float
    seq: int
    sock: Any = field(compare=False)
    done: bool = field(default=False, compare=False)
    expired: bool = field(default=False, compare=False)


class Deadlines:
    """Shuts down the sockets of requests that outlived their deadline."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[Watched] = []
        self._wake = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def bound(self, deadline: float) -> Iterator[list[Watched]]:
        """While in it, this thread's requests end by ``deadline``; the list gets
        each watch, so the caller can tell a shut-down socket from a failing one."""
        watches: list[Watched] = []
        _local.request = (self, deadline, watches)
        try:
            yield watches
        finally:
            _local.request = None

    def watch(self, sock: Any, deadline: float) -> Watched:
        w = Watched(deadline, next(self._seq), sock)
        with self._wake:
            heapq.heappush(self._heap, w)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kubemeta-deadlines",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return w

    def done(self, w: Watched) -> None:
        with self._wake:
            w.done = True

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                first = self._heap[0]
                left = first.deadline - self._clock()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._heap)
                # Under the lock: a request that got its answer meanwhile (done)
                # gave its connection back, for another request to use.
                first.expired = True
                with contextlib.suppress(OSError):
                    first.sock.shutdown(socket.SHUT_RDWR)


def closed_on_reuse() -> bool:
    """Whether this thread's last request failed because a connection that had
    already carried an answer was closed under it, with no byte of a new one."""
    return bool(getattr(_local, "closed_on_reuse", False))


def _awaiting(conn: Any, get: Any, *args: Any, **kwargs: Any) -> Any:
    reused = getattr(conn, "_kubemeta_answers", 0) > 0
    _local.closed_on_reuse = False
    request = getattr(_local, "request", None)
    w = None
    if request is not None and conn.sock is not None:
        deadlines, deadline, watches = request
        w = deadlines.watch(conn.sock, deadline)
        watches.append(w)
    try:
        answer = get(*args, **kwargs)
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        # RemoteDisconnected: closed before the status line. A socket shut down
        # at its deadline looks the same, and is not a race.
        _local.closed_on_reuse = reused and not (w is not None and w.expired)
        raise
    finally:
        if w is not None:
            deadlines.done(w)
    conn._kubemeta_answers = getattr(conn, "_kubemeta_answers", 0) + 1
    return answer


class _Counting:
    """Counts the answers a connection carried since it was (re)opened."""

    _kubemeta_answers = 0

    def connect(self) -> None:
        self._kubemeta_answers = 0
        super().connect()  # type: ignore[misc]

    def close(self) -> None:
        self._kubemeta_answers = 0
        super().close()  # type: ignore[misc]


def pool_classes(urllib3: Any) -> dict[str, Any]:
    """urllib3's pool classes, with connections that are watched while they await
    an answer and count the answers they carried (for
    ``PoolManager.pool_classes_by_scheme``)."""
    conn_mod = urllib3.connection
    pool_mod = urllib3.connectionpool

    class HTTPConnection(_Counting, conn_mod.HTTPConnection):  # type: ignore[misc, name-defined]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            return _awaiting(self, super().getresponse, *args, **kwargs)

    class HTTPSConnection(_Counting, conn_mod.HTTPSConnection):  # type: ignore[misc, name-defined]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            return _awaiting(self, super().getresponse, *args, **kwargs)

    class HTTPConnectionPool(pool_mod.HTTPConnectionPool):  # type: ignore[misc, name-defined]
        ConnectionCls = HTTPConnection

    class HTTPSConnectionPool(pool_mod.HTTPSConnectionPool):  # type: ignore[misc, name-defined]
        ConnectionCls = HTTPSConnection

    return {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
