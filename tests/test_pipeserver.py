"""The pipe loop on real pipes: one answer per line, in order; with busy_poll the
same answers, and it still stops at EOF."""

from __future__ import annotations

import os
import threading

import pytest

from kubemeta.shell.pipeserver import PipeServer
from kubemeta.wire.framing import Frame, LineFramer


def echo(frame: Frame) -> bytes:
    assert isinstance(frame, bytes)
    return b"re:" + frame + b"\n"


@pytest.mark.parametrize("busy_poll", [0.0, 0.001])
def test_one_answer_per_line_half_duplex_then_eof(busy_poll: float) -> None:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    server = PipeServer(echo, LineFramer(1024), in_fd=in_r, out_fd=out_w, busy_poll=busy_poll)
    why: list[str] = []
    t = threading.Thread(target=lambda: why.append(server.serve()))
    t.start()
    for i in range(200):
        os.write(in_w, f"line {i}\n".encode())
        reply = b""
        while not reply.endswith(b"\n"):
            reply += os.read(out_r, 4096)
        assert reply == f"re:line {i}\n".encode()
    os.write(in_w, b"a\nb\n")  # two at once: two answers
    got = b""
    while got.count(b"\n") < 2:
        got += os.read(out_r, 4096)
    assert got == b"re:a\nre:b\n"
    os.close(in_w)
    t.join(5)
    assert why == ["eof"] and server.lines == 202
    for fd in (in_r, out_r, out_w):
        os.close(fd)


def read_reply(fd: int) -> bytes:
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        assert chunk, "the pipe closed before a whole reply"
        reply += chunk
    return reply


@pytest.mark.parametrize("busy_poll", [0.0, 0.001])
def test_a_reply_rsyslog_stopped_waiting_for_is_not_written(busy_poll: float) -> None:
    """mmexternal at shutdown: rsyslog gives up on line A's reply and sends line B.
    A's reply, written now, would be read as B's; the pipe stays in step only if
    it is never written."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    asked = threading.Event()
    go_on = threading.Event()

    def slow(frame: Frame) -> bytes:
        if frame == b"slow":
            asked.set()
            assert go_on.wait(30)
        return echo(frame)

    hurried: list[bool] = []
    server = PipeServer(slow, LineFramer(1024), in_fd=in_r, out_fd=out_w, busy_poll=busy_poll,
                        half_duplex=True, on_abandoned=lambda: hurried.append(True))
    t = threading.Thread(target=server.serve)
    t.start()
    os.write(in_w, b"first\n")
    assert read_reply(out_r) == b"re:first\n"
    os.write(in_w, b"slow\n")
    assert asked.wait(30)
    os.write(in_w, b"next\n")  # rsyslog gave up on "slow", and sent the next line
    go_on.set()
    assert read_reply(out_r) == b"re:next\n", "the next line gets its own reply"
    os.write(in_w, b"a\nb\n")  # two at once: the first was given up on
    assert read_reply(out_r) == b"re:b\n"
    os.write(in_w, b"last\n")
    assert read_reply(out_r) == b"re:last\n"
    os.close(in_w)
    t.join(5)
    assert server.lines == 6 and server.abandoned == 2
    assert hurried == [True], "told once: rsyslog is shutting down"
    for fd in (in_r, out_r, out_w):
        os.close(fd)
