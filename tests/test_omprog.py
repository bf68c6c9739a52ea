"""omprog's status protocol in pure form, and the responder over a counting fake sink."""

from __future__ import annotations

import pytest

from kubemeta.cache.store import Counters
from kubemeta.errors import SinkError
from kubemeta.wire.framing import Frame
from kubemeta.wire.omprog import BEGIN, COMMIT, OmprogSession, Step

from fakes import FakeRsyslogOmprog


def upper(frame: Frame) -> bytes | None:
    return None if frame == b"drop" else bytes(frame).upper() + b"\n"  # type: ignore[arg-type]


def test_without_transactions_every_record_is_written_then_ok() -> None:
    s = OmprogSession(upper)
    assert s.step(b"a") == Step(b"A\n", "OK")
    assert s.step(b"drop") == Step(None, "OK")


def test_inside_a_transaction_every_record_is_written_before_it_is_deferred() -> None:
    s = OmprogSession(upper)
    assert s.step(BEGIN) == Step(None, "OK")
    assert [s.step(x) for x in (b"a", b"drop", b"b")] == [
        Step(b"A\n", "DEFER_COMMIT"), Step(None, "DEFER_COMMIT"), Step(b"B\n", "DEFER_COMMIT")]
    assert s.step(COMMIT) == Step(None, "OK")
    assert not s.in_transaction
    assert s.step(BEGIN) == Step(None, "OK") and s.step(COMMIT) == Step(None, "OK")


def test_a_new_begin_starts_afresh() -> None:
    s = OmprogSession(upper)
    s.step(BEGIN)
    s.step(b"a")
    assert s.step(BEGIN) == Step(None, "OK")  # rsyslog gave up on the last transaction
    assert s.step(b"b") == Step(b"B\n", "DEFER_COMMIT")
    assert s.step(COMMIT) == Step(None, "OK")


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
    from kubemeta.shell.pipeserver import OmprogResponder

    w = FakeWriter(fail_times=2)
    e = StubEnricher()
    r = OmprogResponder(e, w)  # type: ignore[arg-type]
    answers = [r(b"a"), r(b"a"), r(b"a")]
    assert answers[0] == answers[1] == b"Error: sink unix:/x: Connection refused second line\n"
    assert answers[2] == b"OK\n" and w.taken == [b"A\n"]
    assert e.counters.sinkfailures == 2 and e.counters.sinklines == 1


def test_responder_answers_a_record_only_once_the_sink_has_it() -> None:
    from kubemeta.shell.pipeserver import OmprogResponder

    w = FakeWriter(fail_times=1)
    r = OmprogResponder(StubEnricher(), w)  # type: ignore[arg-type]
    first = [r(x) for x in (BEGIN, b"a", b"b")]
    assert first[:2] == [b"OK\n", b"Error: sink unix:/x: Connection refused second line\n"]
    assert first[2] == b"DEFER_COMMIT\n" and w.taken == [b"B\n"]
    assert r(COMMIT) == b"OK\n" and w.taken == [b"B\n"]


def records_through_rsyslog(use_transactions: bool, batches: list[list[bytes]],
                            kill_at: int | None, kill_after: bool) -> tuple[list[bytes], int]:
    """The lines the sink took when rsyslog sends ``batches`` to kubemeta's omprog
    responder and kubemeta dies at frame ``kill_at``; and the frames sent."""
    from kubemeta.shell.pipeserver import OmprogResponder

    sink = FakeWriter()
    rs = FakeRsyslogOmprog(lambda: OmprogResponder(StubEnricher(), sink),  # type: ignore[arg-type]
                           use_transactions, kill_at, kill_after)
    for batch in batches:
        rs.commit(batch)
    return b"".join(sink.taken).splitlines(), rs.sent


@pytest.mark.parametrize("use_transactions", [True, False], ids=["transactions", "single"])
@pytest.mark.parametrize("batch", [1, 2, 3, 5])
def test_a_kill_at_any_point_loses_no_record(use_transactions: bool, batch: int) -> None:
    """rsyslog resends the record in flight when the helper dies, not the records
    of its transaction that were answered before it: each of those must already be
    in the sink. Every point of every transaction is tried, before and after the
    helper acted on its frame; duplicates are bounded by what one batch holds."""
    records = [f"r{i}".encode() for i in range(2 * batch + 1)]
    batches = [records[i:i + batch] for i in range(0, len(records), batch)]
    _, frames = records_through_rsyslog(use_transactions, batches, None, False)
    want = {r.upper() for r in records}
    for kill_at in range(frames):
        for kill_after in (False, True):
            got, _ = records_through_rsyslog(use_transactions, batches, kill_at, kill_after)
            assert set(got) == want, f"lost {sorted(want - set(got))} killed at frame " \
                                     f"{kill_at}{' after acting' if kill_after else ''}"
            assert len(got) - len(want) <= batch
