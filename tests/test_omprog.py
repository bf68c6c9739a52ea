"""omprog's status protocol in pure form, and the responder over a counting fake sink."""

from __future__ import annotations

from kubemeta.errors import SinkError
from kubemeta.framing import Frame
from kubemeta.omprog import BEGIN, COMMIT, OmprogSession, Step
from kubemeta.store import Counters


def upper(frame: Frame) -> bytes | None:
    return None if frame == b"drop" else bytes(frame).upper() + b"\n"  # type: ignore[arg-type]


def test_without_transactions_every_record_is_written_then_ok() -> None:
    s = OmprogSession(upper, 1024)
    assert s.step(b"a") == Step(b"A\n", "OK")
    assert s.step(b"drop") == Step(None, "OK")


def test_a_transaction_is_written_once_at_commit() -> None:
    s = OmprogSession(upper, 1024)
    assert s.step(BEGIN) == Step(None, "OK")
    assert [s.step(x) for x in (b"a", b"drop", b"b")] == [Step(None, "DEFER_COMMIT")] * 3
    assert s.step(COMMIT) == Step(b"A\nB\n", "OK")
    assert not s.in_transaction
    assert s.step(BEGIN) == Step(None, "OK") and s.step(COMMIT) == Step(None, "OK")


def test_a_full_buffer_is_written_early_as_previous_committed() -> None:
    s = OmprogSession(upper, 4)
    s.step(BEGIN)
    assert s.step(b"a") == Step(None, "DEFER_COMMIT")
    assert s.step(b"b") == Step(None, "DEFER_COMMIT")
    assert s.step(b"c") == Step(b"A\nB\n", "PREVIOUS_COMMITTED")
    assert s.step(COMMIT) == Step(b"C\n", "OK")


def test_a_failure_drops_the_transaction_that_rsyslog_will_resend() -> None:
    s = OmprogSession(upper, 1024)
    s.step(BEGIN)
    s.step(b"a")
    assert s.step(COMMIT).data == b"A\n"
    s.failed()  # the commit's write failed
    s.step(BEGIN)
    s.step(b"a")
    assert s.step(COMMIT) == Step(b"A\n", "OK")


def test_a_new_begin_discards_an_abandoned_transaction() -> None:
    s = OmprogSession(upper, 1024)
    s.step(BEGIN)
    s.step(b"a")
    s.step(BEGIN)
    s.step(b"b")
    assert s.step(COMMIT) == Step(b"B\n", "OK")


class FakeWriter:
    """Takes writes into ``taken``; fails the next ``fail_times`` writes."""

    def __init__(self, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.taken: list[bytes] = []
        self.attempts = 0

    def write(self, data: bytes) -> None:
        self.attempts += 1
        if self.fail_times:
            self.fail_times -= 1
            raise SinkError("sink unix:/x: Connection refused\nsecond line")
        self.taken.append(data)


class StubEnricher:
    def __init__(self) -> None:
        self.counters = Counters()

    def enriched(self, frame: Frame) -> bytes | None:
        return upper(frame)


def test_responder_answers_error_until_the_sink_takes_the_line() -> None:
    from kubemeta.service import OmprogResponder

    w = FakeWriter(fail_times=2)
    e = StubEnricher()
    r = OmprogResponder(e, w, 1024)  # type: ignore[arg-type]
    answers = [r(b"a"), r(b"a"), r(b"a")]
    assert answers[0] == answers[1] == b"Error: sink unix:/x: Connection refused second line\n"
    assert answers[2] == b"OK\n" and w.taken == [b"A\n"]
    assert e.counters.sinkfailures == 2 and e.counters.sinklines == 1


def test_responder_transaction_resent_after_failed_commit_is_written_once() -> None:
    from kubemeta.service import OmprogResponder

    w = FakeWriter(fail_times=1)
    r = OmprogResponder(StubEnricher(), w, 1024)  # type: ignore[arg-type]
    first = [r(x) for x in (BEGIN, b"a", b"b", COMMIT)]
    assert first[:3] == [b"OK\n", b"DEFER_COMMIT\n", b"DEFER_COMMIT\n"]
    assert first[3].startswith(b"Error: ")
    again = [r(x) for x in (BEGIN, b"a", b"b", COMMIT)]
    assert again[3] == b"OK\n" and w.taken == [b"A\nB\n"]
