from __future__ import annotations

import json

import pytest

from kubemeta import jsonlib
from kubemeta.errors import RecordError
from kubemeta.wire.framing import OVERSIZE, LineFramer
from kubemeta.wire.record import RecordFields, RecordReader

CODECS = [c for c in (jsonlib.STDLIB, jsonlib.ORJSON) if c is not None]


def test_one_line_per_read() -> None:
    f = LineFramer(100)
    assert f.feed(b'{"a":1}\n') == [b'{"a":1}']


def test_lines_split_and_joined_across_reads() -> None:
    f = LineFramer(100)
    assert f.feed(b"ab") == []
    assert f.feed(b"c\nde") == [b"abc"]
    assert f.feed(b"\n\nx\n") == [b"de", b"", b"x"]
    assert f.pending() == 0


def test_oversize_line_becomes_one_marker_and_framing_recovers() -> None:
    f = LineFramer(10)
    assert f.feed(b"0123456789ABCDEF") == []        # over the bound: dropped as it comes
    assert f.feed(b"more junk") == []
    assert f.feed(b"tail\nok\n") == [OVERSIZE, b"ok"]
    assert f.feed(b"x" * 11 + b"\n" + b"y\n") == [OVERSIZE, b"y"]
    assert f.feed(b"z" * 50 + b"\n") == [OVERSIZE]   # fast path bounds too
    assert len(f._buf) == 0


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_reads_rsyslog_fulljson(codec: jsonlib.Codec) -> None:
    # As rsyslog 8.2302 writes it: spaced, "/" escaped, uuid null.
    line = (b'{ "msg": "x", "rawmsg": "x", "uuid": null, "$!": { "metadata": { "filename": '
            b'"\\/var\\/log\\/containers\\/a_b_c-1.log", "fileoffset": "0" }, "log": "x\\n" } }')
    r = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL", codec.loads)
    src = r.read(line)
    assert src[:5] == ("/var/log/containers/a_b_c-1.log", None, None, "x", "x\n")
    assert src.tree is not None and src.tree["metadata"]["fileoffset"] == "0"


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("line", [
    b"not json", b"\xff\xfe\x00garbage", b'{"$!": ', b"[1,2,3]", b'"string"', b"null",
    b'{"a": "\x00"}', b"[" * 100000 + b"]" * 100000, b'{"$!": [1]}',
    b'{"$!": {"metadata": {"filename": 42}}}', b'{"$!": {"metadata": {"filename": {"a": 1}}}}',
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
])
def test_hostile_lines_raise_record_error_only(codec: jsonlib.Codec, line: bytes) -> None:
    r = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL", codec.loads)
    with pytest.raises(RecordError):
        r.read(line)


def test_missing_fields_are_not_errors() -> None:
    r = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL")
    assert r.read(b'{"msg": "x", "$!": null}') == RecordFields(None, None, None, "x")
    assert r.read(b'{"msg": 7}') == RecordFields(None, None, None)
    assert r.read(b'{"$!": {"metadata": "flat", "log": 1}}') == \
        RecordFields(None, None, None, tree={"metadata": "flat", "log": 1})


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_codecs_agree(codec: jsonlib.Codec) -> None:
    obj = {"$!": {"kubernetes": {"labels": {"ü": "✓"}, "n": "a\"b\\c\n"}}}
    assert json.loads(codec.dumps(obj)) == obj
    assert b"\n" not in codec.dumps(obj)
