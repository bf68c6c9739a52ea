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
