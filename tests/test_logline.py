from __future__ import annotations

import pytest

from kubemeta import jsonlib
from kubemeta.model.logline import LogLine, parse_cri, parse_json_log

T1 = "2026-11-21T10:00:00.123456789Z"
T2 = "2026-11-21T10:00:00.223456789Z"


def test_one_full_piece_reads_like_docker() -> None:
    assert parse_cri(f"{T1} stdout F hello world") == LogLine("hello world\n", "stdout", T1)
    assert parse_cri(f"{T1} stderr F  two  spaces ") == LogLine(" two  spaces \n", "stderr", T1)


def test_empty_line_with_and_without_trailing_space() -> None:
    assert parse_cri(f"{T1} stdout F ") == LogLine("\n", "stdout", T1)
    assert parse_cri(f"{T1} stdout F") == LogLine("\n", "stdout", T1)


def test_partial_pieces_join_into_one_line() -> None:
    a, b, c = "a" * 16384, "b" * 16384, "tail"
    msg = f"{T1} stdout P {a}\n{T2} stdout P {b}\n{T2} stdout F {c}"
    assert parse_cri(msg) == LogLine(a + b + c + "\n", "stdout", T1)


def test_only_partial_pieces_have_no_newline() -> None:
    # imfile flushed before the F piece arrived: docker writes such a piece without "\n".
    assert parse_cri(f"{T1} stdout P abc\n{T2} stdout P def") == LogLine("abcdef", "stdout", T1)


def test_later_tags_are_ignored() -> None:
    assert parse_cri(f"{T1} stdout F:x:y text") == LogLine("text\n", "stdout", T1)


def test_a_line_without_prefix_is_kept_as_text() -> None:
    assert parse_cri(f"{T1} stdout P abc\nstray\n{T2} stdout F def") == \
        LogLine("abc\nstraydef\n", "stdout", T1)


@pytest.mark.parametrize("msg", [
    "", "hello", '{"log":"x\\n","stream":"stdout","time":"2026-11-21T10:00:00Z"}',
    f"{T1} stdin F text", f"{T1} stdout X text", "2026 stdout F text", f"{T1}",
    f"{T1} stdout", "12:00:00 stdout F text",
])
def test_not_cri(msg: str) -> None:
    assert parse_cri(msg) is None


@pytest.mark.parametrize("codec", [c for c in (jsonlib.STDLIB, jsonlib.ORJSON) if c],
                         ids=lambda c: c.name)
def test_json_log_objects_only(codec: jsonlib.Codec) -> None:
    assert parse_json_log('{"level":"info","n":1}\n', codec.loads) == {"level": "info", "n": 1}
    assert parse_json_log('  {"a": {"b": [1]}}  ', codec.loads) == {"a": {"b": [1]}}
    for text in ("plain text\n", "[1,2]", '{"broken": ', "{}x", "", "{", '"{}"',
                 "{" * 5000 + "}" * 5000, '{"a":"\ud800"}'):
        assert parse_json_log(text, codec.loads) is None, text
