"""List answers decoded item by item, whatever pieces the network cuts them into."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubemeta.errors import ApiBadResponse
from kubemeta.wire.listproto import ListDecoder, Listing


def pod(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"web-{i}", "namespace": "shop",
                         "labels": {"app": "web", "note": "ünïcode \" ] } , {"}},
            "spec": {"nodeName": "node-1", "n": i, "f": 1.5e3, "x": [None, True]}}


def body(items: Any, rv: str | None = "42", indent: int | None = None,
         metadata_last: bool = False) -> bytes:
    md = {"resourceVersion": rv} if rv is not None else {}
    obj: dict[str, Any] = {"kind": "PodList", "apiVersion": "v1"}
    if not metadata_last:
        obj["metadata"] = md
    obj["items"] = items
    if metadata_last:
        obj["metadata"] = md
    return json.dumps(obj, indent=indent, ensure_ascii=False).encode()


def decode(data: bytes, size: int, max_item: int = 1 << 20, need_rv: bool = True
           ) -> tuple[list[dict[str, Any]], ListDecoder]:
    d = ListDecoder(max_item, need_rv)
    out: list[dict[str, Any]] = []
    for i in range(0, len(data), size):
        out += d.feed(data[i:i + size])
    out += d.close()
    return out, d


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_items_come_out_whole_and_in_order_whatever_the_pieces(size: int,
                                                                indent: int | None) -> None:
    items = [pod(i) for i in range(20)]
    out, d = decode(body(items, indent=indent), size)
    assert out == items
    assert d.resource_version == "42"
    assert d.items == 20


def test_items_are_handed_out_as_soon_as_they_are_complete() -> None:
    data = body([pod(i) for i in range(3)])
    d = ListDecoder(1 << 20)
    first_end = data.index(b"]}}", data.index(b"web-0")) + 3
    assert d.feed(data[:first_end - 1]) == []
    # The item's closing brace arrives: it is out, with nothing after it yet.
    assert d.feed(data[first_end - 1:first_end]) == [pod(0)]


def test_held_text_stays_within_one_item_however_long_the_list() -> None:
    data = body([pod(i) for i in range(2000)])
    d = ListDecoder(1 << 20)
    most = 0
    n = 0
    for i in range(0, len(data), 4096):
        n += len(d.feed(data[i:i + 4096]))
        most = max(most, d.pending())
    n += len(d.close())
    assert n == 2000
    assert most < 4096 + len(json.dumps(pod(1999)))


def test_metadata_after_items_and_empty_lists() -> None:
    out, d = decode(body([pod(1)], metadata_last=True), 5)
    assert out == [pod(1)] and d.resource_version == "42"
    for empty in (b'{"metadata":{"resourceVersion":"7"},"items":[]}',
                  b'{"metadata":{"resourceVersion":"7"},"items":null}'):
        out, d = decode(empty, 3)
        assert out == [] and d.resource_version == "7"


def test_numbers_cut_between_pieces_are_read_whole() -> None:
    data = b'{"count":123456,"metadata":{"resourceVersion":"9"},"items":[]}'
    for cut in range(len(data)):
        d = ListDecoder(1 << 20)
        d.feed(data[:cut])
        d.feed(data[cut:])
        d.close()
        assert d.resource_version == "9"


def test_the_kubelet_list_needs_no_resource_version() -> None:
    out, d = decode(body([pod(1)], rv=None), 10, need_rv=False)
    assert out == [pod(1)] and d.resource_version is None
    with pytest.raises(ApiBadResponse, match="no resourceVersion"):
        decode(body([pod(1)], rv=None), 10)


def test_items_that_are_not_objects_are_skipped() -> None:
    out, _ = decode(body([1, "x", None, pod(2), []]), 4)
    assert out == [pod(2)]


@pytest.mark.parametrize(("data", "why"), [
    (b"", "cut short"),
    (b'{"metadata":{"resourceVersion":"1"},"items":[{"a":1}', "cut short"),
    (b'{"metadata":{"resourceVersion":"1"}}', "no items"),
    (b'[{"a":1}]', "not a JSON object"),
    (b"<html>502 Bad Gateway</html>", "not a JSON object"),
    (b'{"items":[{"a":1} {"b":2}],"metadata":{}}', "between items"),
    (b'{"items":[] "metadata":{}}', "between members"),
    (b'{"items":{"a":1}}', "not an array"),
    (b'{"items" [] }', "no colon"),
    (b'{1:2}', "not a string"),
    (b'{"items":[{"a":tru}],"metadata":{"resourceVersion":"1"}}', "not JSON"),
    (b'{"items":[],"metadata":{"resourceVersion":"1"}} trailing', "cut short or not JSON"),
    (b'{"items":["\xff\xfe"]}', "not UTF-8"),
    (b'{"items":[' + b"[" * 100000 + b"]" * 100000 + b"]}", "nested too deeply"),
])
def test_what_is_not_a_list_answer_says_so(data: bytes, why: str) -> None:
    for size in (1, 5, len(data) or 1):
        with pytest.raises(ApiBadResponse, match=why):
            decode(data, size)


def test_an_item_larger_than_the_limit_is_refused_while_it_arrives() -> None:
    big = body([{"metadata": {"name": "x" * 5000}}])
    d = ListDecoder(1000)
    with pytest.raises(ApiBadResponse, match="larger than 1000"):
        for i in range(0, len(big), 100):
            d.feed(big[i:i + 100])
    assert i < 2000  # noticed long before the item ended


def test_a_listing_raises_before_its_last_item_when_the_answer_is_bad() -> None:
    got: list[dict[str, Any]] = []
    listing = Listing([body([pod(1), pod(2)])[:-1]], 1 << 20)
    with pytest.raises(ApiBadResponse):
        for item in listing:
            got.append(item)
    assert len(got) == 2  # read, but the consumer never saw the iteration end
    with pytest.raises(ApiBadResponse):
        _ = Listing([], 1 << 20).resource_version
