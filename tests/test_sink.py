"""The omprog sink over real files and sockets: what 'taken' means for each."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

import pytest

from kubemeta.cache.policy import Backoff
from kubemeta.errors import ConfigError, SinkError
from kubemeta.shell.sink import SinkWriter
from kubemeta.wire.sinkaddr import Sink, parse_sink

from fakes import FakeClock
from harness import LineConsumer

BACKOFF = Backoff(1.0, 8.0, 0.0)


def unix_consumer(path: Path) -> LineConsumer:
    return LineConsumer(str(path))


def test_parse_sink() -> None:
    assert parse_sink("file:/var/log/x.json") == Sink("file", path="/var/log/x.json")
    assert parse_sink("unix:/run/k.sock") == Sink("unix", path="/run/k.sock")
    assert parse_sink("tcp:127.0.0.1:10514") == Sink("tcp", host="127.0.0.1", port=10514)
    assert parse_sink("tcp:[::1]:10514") == Sink("tcp", host="::1", port=10514)
    assert str(parse_sink("tcp:[::1]:10514")) == "tcp:[::1]:10514"
    assert str(parse_sink("tcp:10.0.0.1:514")) == "tcp:10.0.0.1:514"
    for bad in ("file:relative", "udp:1.2.3.4:5", "tcp:host", "tcp:host:0", "tcp:h:99999", "x"):
        with pytest.raises(ConfigError, match="sink"):
            parse_sink(bad)


def test_file_sink_appends_and_reopens_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "enriched.json"
    w = SinkWriter(Sink("file", path=str(path)), 1.0, BACKOFF)
    w.write(b"one\n")
    os.rename(path, tmp_path / "enriched.json.1")
    w.write(b"two\n")  # still the open (rotated) file, as logrotate expects until HUP
    w.request_reopen()
    w.write(b"three\n")
    assert (tmp_path / "enriched.json.1").read_bytes() == b"one\ntwo\n"
    assert path.read_bytes() == b"three\n"
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_file_sink_in_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    w = SinkWriter(Sink("file", path=str(tmp_path / "no" / "x.json")), 1.0, BACKOFF)
    with pytest.raises(SinkError, match="No such file or directory"):
        w.write(b"x\n")


def test_unix_write_returns_only_once_the_consumer_has_read(tmp_path: Path) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "s"))
    srv.listen()
    w = SinkWriter(Sink("unix", path=str(tmp_path / "s")), 10.0, BACKOFF)
    done = threading.Event()

    def write() -> None:
        w.write(b"held\n")
        done.set()

    threading.Thread(target=write, daemon=True).start()
    conn, _ = srv.accept()
    # In the kernel's buffer is not taken: the write must still be waiting.
    assert not done.wait(0.3)
    assert conn.recv(100) == b"held\n"
    assert done.wait(5)
    w.close()


def test_a_consumer_that_stops_reading_fails_the_write(tmp_path: Path) -> None:
    c = unix_consumer(tmp_path / "s")
    c.reading.clear()
    w = SinkWriter(Sink("unix", path=str(tmp_path / "s")), 0.3, BACKOFF)
    with pytest.raises(SinkError, match="did not read"):
        w.write(b"x" * 1000 + b"\n")


def test_refused_backs_off_then_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "kubemeta")
    clock = FakeClock()
    path = tmp_path / "s"
    w = SinkWriter(Sink("unix", path=str(path)), 1.0, BACKOFF, clock=clock)
    with pytest.raises(SinkError, match="No such file"):
        w.write(b"a\n")
    with pytest.raises(SinkError, match=r"next attempt in 1\.0 s"):
        w.write(b"a\n")  # within the backoff: no connection attempt
    clock.advance(1.0)
    with pytest.raises(SinkError):
        w.write(b"a\n")
    with pytest.raises(SinkError, match=r"next attempt in 2\.0 s"):
        w.write(b"a\n")
    c = unix_consumer(path)
    clock.advance(2.0)
    w.write(b"a\n")
    assert c.wait_lines(1) == [b"a"]  # read before write returned; split just after
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in msgs) == 1
    assert sum("recovered after 3.0 s" in m for m in msgs) == 1


def test_a_closed_connection_is_replaced_before_writing(tmp_path: Path) -> None:
    c = unix_consumer(tmp_path / "s")
    w = SinkWriter(Sink("unix", path=str(tmp_path / "s")), 2.0, BACKOFF)
    w.write(b"first\n")
    for conn in c.conns:  # the consumer hangs up; its listener stays
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    for i in range(5):
        w.write(b"after %d\n" % i)  # no write is lost to the dead connection
    w.close()
    assert c.wait_lines(6) == [b"first"] + [b"after %d" % i for i in range(5)]


def test_tcp_sink(tmp_path: Path) -> None:
    c = LineConsumer(("127.0.0.1", 0))
    assert isinstance(c.address, tuple)
    w = SinkWriter(Sink("tcp", host="127.0.0.1", port=c.address[1]), 2.0, BACKOFF)
    for i in range(50):
        w.write(b"%d\n" % i)
    w.close()
    assert c.wait_lines(50) == [b"%d" % i for i in range(50)]


def test_a_consumer_closing_with_our_bytes_unread_is_a_failure(tmp_path: Path) -> None:
    """The kernel frees unread bytes when the consumer closes; an empty send queue
    then proves nothing, and the write must not be reported as taken."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "s"))
    srv.listen()
    w = SinkWriter(Sink("unix", path=str(tmp_path / "s")), 5.0, BACKOFF)
    closer = threading.Thread(target=lambda: (time_sleep(0.2), accepted[0].close()))
    accepted: list[socket.socket] = []

    def accept_then_close() -> None:
        conn, _ = srv.accept()
        accepted.append(conn)
        closer.start()

    threading.Thread(target=accept_then_close, daemon=True).start()
    with pytest.raises(SinkError, match="without reading"):
        w.write(b"never read\n")


def time_sleep(s: float) -> None:
    threading.Event().wait(s)
