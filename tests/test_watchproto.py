"""Watch stream decoding: bytes in, events out, one error family."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubemeta.errors import ApiBadResponse, ApiError, ApiForbidden, ApiGone, ApiServerError
from kubemeta.wire.watchproto import WatchDecoder, decode_event


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


POD = {"kind": "Pod", "metadata": {"name": "web-1", "resourceVersion": "17"}}


def test_events_split_anywhere_come_out_whole_and_in_order() -> None:
    data = line("ADDED", POD) + line("BOOKMARK", {"metadata": {"resourceVersion": "20"}}) \
        + line("DELETED", POD)
    for cut in range(1, len(data)):
        dec = WatchDecoder()
        evs = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert [(e.type, e.resource_version) for e in evs] == [
            ("ADDED", "17"), ("BOOKMARK", "20"), ("DELETED", "17")]
        assert dec.pending() == 0


def test_oversized_event_is_an_error_not_a_buffer() -> None:
    dec = WatchDecoder(max_event=1000)
    assert dec.feed(b'{"type": "ADDED", "object": {"x": "' + b"y" * 5000) == []
    assert dec.pending() <= 1001
    with pytest.raises(ApiBadResponse, match="larger than 1000"):
        dec.feed(b'"}}\n')


@pytest.mark.parametrize(("raw", "error", "text"), [
    (b"<html>\n", ApiBadResponse, "not JSON"),
    (b'{"type": "ADDED"}\n', ApiBadResponse, "no object"),
    (b'[1, 2]\n', ApiBadResponse, "no object"),
    (line("SURPRISE", POD), ApiBadResponse, "unknown watch event type 'SURPRISE'"),
    (line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired",
                    "message": "too old resource version: 1 (9)"}),
     ApiGone, "410 Gone: too old resource version: 1 (9)"),
    (line("ERROR", {"kind": "Status", "code": 403, "message": "nope"}), ApiForbidden,
     "403 Forbidden: nope"),
    (line("ERROR", {"kind": "Status", "code": "junk"}), ApiServerError, "500"),
])
def test_bad_streams_raise_one_family(raw: bytes, error: type[ApiError], text: str) -> None:
    with pytest.raises(error) as e:
        WatchDecoder().feed(raw)
    assert text in e.value.reason


def test_event_without_version_is_still_an_event() -> None:
    assert decode_event(line("MODIFIED", {"metadata": {}})).resource_version is None
