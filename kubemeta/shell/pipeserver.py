"""rsyslog's pipe: read lines from stdin, write one answer per line to stdout,
in order, until EOF or a signal. The answer is the mode's: the enricher's
reply (mmexternal), or a status word after handing the sink its data (omprog).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from types import FrameType

from kubemeta.errors import SinkError
from kubemeta.shell.enricher import Enricher
from kubemeta.shell.sink import SinkWriter
from kubemeta.text import clip
from kubemeta.wire.framing import Frame, LineFramer
from kubemeta.wire.omprog import OmprogSession

log = logging.getLogger("kubemeta.shell.pipeserver")


class _Stop(Exception):
    pass


class PipeServer:
    """Reads lines from ``in_fd``, writes one answer per line to ``out_fd``, in order.

    ``respond`` is the mode: the enricher's reply for mmexternal, a status line
    for omprog. ``greeting`` is written first (omprog's initial ``OK``).
    """

    READ_SIZE = 1 << 16

    def __init__(self, respond: Callable[[Frame], bytes], framer: LineFramer, in_fd: int = 0,
                 out_fd: int = 1, greeting: bytes = b"",
                 on_hup: Callable[[], None] | None = None, busy_poll: float = 0.0,
                 half_duplex: bool = False,
                 on_abandoned: Callable[[], None] | None = None) -> None:
        self._busy_poll = busy_poll
        self._half_duplex = half_duplex
        self._on_abandoned = on_abandoned  # the first reply rsyslog stopped waiting for
        self._respond = respond
        self._greeting = greeting
        self._on_hup = on_hup
        self._framer = framer
        self._in = in_fd
        self._out = out_fd
        self._reading = False
        self._stopping = False
        self.lines = 0
        self.abandoned = 0  # replies not written: rsyslog had stopped waiting for them

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self._on_hup is None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        else:
            hup = self._on_hup
            signal.signal(signal.SIGHUP, lambda signum, frame: hup())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        # Interrupt a blocking read only: a reply being written must still go out whole.
        if self._reading:
            raise _Stop

    def serve(self) -> str:
        """Returns why it stopped: 'eof', 'signal' or 'pipe closed'."""
        reply = self._respond
        feed = self._framer.feed
        try:
            if self._greeting:
                self._write_all(self._greeting)
            poller = select.poll()  # once, not once per line
            poller.register(self._in, select.POLLIN)
            spin = self._busy_poll > 0
            while not self._stopping:
                if spin:
                    self._spin(poller)
                self._reading = True
                try:
                    data = os.read(self._in, self.READ_SIZE)
                finally:
                    self._reading = False
                if not data:
                    if self._framer.pending():
                        log.info("stdin closed in the middle of a line; it had no reader left",
                                 extra={"event": "eof_partial"})
                    return "eof"
                frames = feed(data)
                if not frames:
                    continue
                self.lines += len(frames)
                if self._half_duplex:
                    out = self._in_step(frames, poller)
                else:
                    out = reply(frames[0]) if len(frames) == 1 else b"".join(map(reply, frames))
                if out:
                    self._write_all(out)
        except _Stop:
            return "signal"
        except BrokenPipeError:
            return "pipe closed"
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EBADF):
                return "pipe closed"
            raise
        return "signal"

    def _in_step(self, frames: list[Frame], poller: select.poll) -> bytes:
        """The reply to the last line only, and only while rsyslog waits for it.

        mmexternal sends a line, then reads its reply. When it shuts down, rsyslog
        interrupts that read, takes ``{}`` as the reply, and may send the worker's
        next line: a reply written then would be read as the next line's. A line
        that arrives before its predecessor's reply was written says just that."""
        late = len(frames) - 1
        out = self._respond(frames[-1])
        if self._framer.pending() or poller.poll(0):
            late += 1  # the next line (or EOF) is here already
            out = b""
        if late:
            if not self.abandoned:
                log.warning("rsyslog stopped waiting for a reply (it does when it shuts "
                            "down); that line went out without metadata, and its reply was "
                            "not written, so the next line gets its own; the lines left "
                            "are answered without waiting for the API",
                            extra={"event": "reply_abandoned"})
                if self._on_abandoned is not None:
                    self._on_abandoned()
            self.abandoned += late
        return out

    def _spin(self, poller: select.poll) -> None:
        """Wait for the next line awake, for at most ``busy_poll`` seconds: rsyslog
        sends it right after it took the reply, and a process that slept must be
        woken up, which costs more than the line itself."""
        end = time.perf_counter() + self._busy_poll
        while not poller.poll(0) and time.perf_counter() < end:
            pass

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._out, view)
            view = view[n:]


class OmprogResponder:
    """omprog mode: enrich, hand the sink what the protocol says, answer with a status."""

    def __init__(self, enricher: Enricher, writer: SinkWriter) -> None:
        self._session = OmprogSession(enricher.enriched)
        self._writer = writer
        self._counters = enricher.counters

    def __call__(self, frame: Frame) -> bytes:
        step = self._session.step(frame)
        if step.data is not None:
            try:
                self._writer.write(step.data)
            except SinkError as e:
                self._counters.sinkfailures += 1
                # One line, no newline inside: omprog reads exactly one.
                return f"Error: {clip(str(e))}".encode("utf-8", "replace") + b"\n"
            self._counters.sinklines += step.data.count(b"\n")
        return step.status.encode() + b"\n"
