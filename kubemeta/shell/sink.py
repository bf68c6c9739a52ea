"""omprog mode's output: a file, a unix stream socket or a TCP address.

``SinkWriter.write`` returns only once the data is safe by the sink's own
measure, and raises SinkError otherwise; omprog then answers rsyslog with an
error and rsyslog keeps the records and resends them.

- file: the write() returned (the data is in the kernel's page cache).
- unix: the consumer has read every byte: the socket's send queue is empty
  (SIOCOUTQ), which on a unix socket counts bytes the reader has not taken,
  and the consumer did not close the connection with them unread.
- tcp: the peer's kernel has acknowledged every byte (SIOCOUTQ again).

A dead connection is noticed before writing (a consumer never talks back, so a
readable socket means it closed) and replaced; reconnecting backs off.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios

from kubemeta.cache.policy import Backoff
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import SinkError
from kubemeta.wire.sinkaddr import Sink

log = logging.getLogger("kubemeta.shell.sink")

_OUTQ = termios.TIOCOUTQ  # == SIOCOUTQ on Linux


def _outq(sock: socket.socket) -> int:
    raw = fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


def _describe(e: OSError) -> str:
    if e.strerror:
        return e.strerror
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


class SinkWriter:
    def __init__(self, sink: Sink, timeout: float, backoff: Backoff,
                 clock: Clock = SYSTEM) -> None:
        self.sink = sink
        self._timeout = timeout
        self._backoff = backoff
        self._clock = clock
        self._fd: int | None = None
        self._sock: socket.socket | None = None
        self._reopen = False
        self._failures = 0
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._last_error = ""

    def request_reopen(self) -> None:
        """From a SIGHUP handler: reopen a file sink before the next write (logrotate)."""
        self._reopen = True

    def write(self, data: bytes) -> None:
        now = self._clock()
        if self._failures and now < self._retry_at:
            raise SinkError(f"sink {self.sink} unavailable ({self._last_error}); "
                            f"next attempt in {self._retry_at - now:.1f} s")
        try:
            if self.sink.kind == "file":
                self._write_file(data)
            else:
                self._write_socket(data)
        except OSError as e:
            self.close()
            self._fail(now, _describe(e))
            raise SinkError(f"sink {self.sink}: {self._last_error}") from e
        if self._failures:
            assert self._down_since is not None
            log.warning("sink %s recovered after %.1f s", self.sink, now - self._down_since,
                        extra={"event": "sink_recovered", "sink": str(self.sink)})
            self._failures = 0
            self._down_since = None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def _fail(self, now: float, reason: str) -> None:
        self._failures += 1
        self._retry_at = now + self._backoff.delay(self._failures)
        if self._down_since is None:
            self._down_since = now
            log.warning("sink %s unavailable: %s; rsyslog keeps the records and resends them",
                        self.sink, reason, extra={"event": "sink_unavailable",
                                                  "sink": str(self.sink)})
        self._last_error = reason

    # -- file --

    def _write_file(self, data: bytes) -> None:
        if self._reopen:
            self._reopen = False
            self.close()
        if self._fd is None:
            self._fd = os.open(self.sink.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                               os.O_CLOEXEC, 0o640)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    # -- sockets --

    def _write_socket(self, data: bytes) -> None:
        if self._sock is not None and self._peer_closed(self._sock):
            log.info("sink %s closed the connection; reconnecting", self.sink,
                     extra={"event": "sink_reconnect", "sink": str(self.sink)})
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        sock.sendall(data)
        self._wait_taken(sock)

    def _connect(self) -> socket.socket:
        if self.sink.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = self.sink.path
        else:
            family = socket.AF_INET6 if ":" in self.sink.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            address = (self.sink.host, self.sink.port)
        sock.settimeout(self._timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        p = select.poll()
        p.register(sock, select.POLLIN)
        if not p.poll(0):
            return False
        try:
            while True:
                chunk = sock.recv(65536, socket.MSG_DONTWAIT)
                if not chunk:
                    return True
                # A consumer has nothing to say to us; discard whatever it sent.
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _wait_taken(self, sock: socket.socket) -> None:
        # An I/O timeout, in the kernel's real time as the socket's own timeouts
        # are; the injected clock schedules the retries, not this wait.
        deadline = SYSTEM() + self._timeout
        pause = 0.00005
        while _outq(sock):
            if SYSTEM() >= deadline:
                raise OSError(errno.ETIMEDOUT, "the consumer did not read what was written")
            SYSTEM.sleep(pause)
            pause = min(pause * 2, 0.005)
        # An empty queue also means the consumer closed with our bytes unread
        # (the kernel frees them); Linux then marks our socket ECONNRESET before
        # freeing them, so this check, made after the queue emptied, sees it.
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, "the consumer closed the connection without reading "
                               f"what was written ({os.strerror(err)})")
