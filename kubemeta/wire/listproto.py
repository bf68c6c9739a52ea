"""List answers (PodList, NamespaceList) decoded as they arrive: sans-IO, bounded.

A node's pods or a large cluster's namespaces come to tens of megabytes of
JSON, and a parsed tree costs several times its text. ListDecoder hands out
each item as soon as its bytes are in, so at most one item is ever held as a
tree and the text is dropped as it is consumed: a list costs the memory of
what is kept from it, not of the answer.

The top level is walked here, each value (an item, the list's metadata) is
parsed by the stdlib's C scanner. Anything that is not a list answer raises
ApiBadResponse, the only error this module raises.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

from kubemeta.errors import ApiBadResponse

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"

# Where the walk is: before the opening brace, before a key (or the closing
# brace), before an item of "items" (or its closing bracket), after a value.
_START, _KEY, _ITEM, _AFTER_VALUE, _AFTER_ITEM, _DONE = range(6)


class ListDecoder:
    def __init__(self, max_item: int, need_resource_version: bool = True) -> None:
        self._max_item = max_item
        self._need_rv = need_resource_version
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""
        self._state = _START
        self._seen_items = False
        self.resource_version: str | None = None
        self.items = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The items completed by ``data``, in order."""
        self._decode(data, final=False)
        out: list[dict[str, Any]] = []
        pos = self._walk(out, final=False)
        self._buf = self._buf[pos:]
        if len(self._buf) > self._max_item:
            raise ApiBadResponse(f"list item larger than {self._max_item} bytes", 200)
        return out

    def pending(self) -> int:
        """Characters held back: the part of an item whose end has not come yet."""
        return len(self._buf)

    def close(self) -> list[dict[str, Any]]:
        """The answer is complete: any last items. Raises if it was not a whole list."""
        self._decode(b"", final=True)
        out: list[dict[str, Any]] = []
        pos = self._walk(out, final=True)
        if self._state != _DONE or self._buf[pos:].strip(_WS):
            raise ApiBadResponse("list answer is cut short or not JSON", 200)
        if not self._seen_items:
            raise ApiBadResponse("list answer has no items", 200)
        if self._need_rv and not self.resource_version:
            raise ApiBadResponse("list answer has no resourceVersion", 200)
        return out

    def _decode(self, data: bytes, final: bool) -> None:
        try:
            self._buf += self._utf8.decode(data, final)
        except UnicodeDecodeError as e:
            raise ApiBadResponse("list answer is not UTF-8", 200) from e

    def _walk(self, out: list[dict[str, Any]], final: bool) -> int:
        """Consume what can be consumed; returns the position of the rest."""
        buf = self._buf
        pos = 0
        while True:
            pos = _skip_ws(buf, pos)
            if pos >= len(buf) or self._state == _DONE:
                return pos
            c = buf[pos]
            if self._state == _START:
                if c != "{":
                    raise ApiBadResponse("list answer is not a JSON object", 200)
                pos += 1
                self._state = _KEY
            elif self._state == _KEY:
                if c == "}":
                    self._state = _DONE
                    return pos + 1
                got = self._key_and_value(buf, pos, final)
                if got is None:
                    return pos
                pos = got
            elif self._state == _ITEM:
                if c == "]":
                    self._state = _AFTER_VALUE
                    pos += 1
                    continue
                got = self._item(buf, pos, final, out)
                if got is None:
                    return pos
                pos = got
            elif self._state == _AFTER_ITEM:
                if c == ",":
                    self._state = _ITEM
                elif c == "]":
                    self._state = _AFTER_VALUE
                else:
                    raise ApiBadResponse("list answer is not JSON (between items)", 200)
                pos += 1
            else:  # _AFTER_VALUE
                if c == ",":
                    self._state = _KEY
                elif c == "}":
                    self._state = _DONE
                else:
                    raise ApiBadResponse("list answer is not JSON (between members)", 200)
                pos += 1

    def _key_and_value(self, buf: str, pos: int, final: bool) -> int | None:
        """One top-level member; "items" opens the array instead. None: need more."""
        parsed = _parse(buf, pos, final)
        if parsed is None:
            return None
        key, end = parsed
        if not isinstance(key, str):
            raise ApiBadResponse("list answer is not JSON (a key is not a string)", 200)
        end = _skip_ws(buf, end)
        if end >= len(buf):
            return None
        if buf[end] != ":":
            raise ApiBadResponse("list answer is not JSON (no colon after a key)", 200)
        end = _skip_ws(buf, end + 1)
        if end >= len(buf):
            return None
        if key == "items":
            if buf[end] == "n" and len(buf) - end < 4 and not final:
                return None
            if buf.startswith("null", end):
                # Go encodes an empty slice this way: an empty list.
                self._seen_items = True
                self._state = _AFTER_VALUE
                return end + 4
            if buf[end] != "[":
                raise ApiBadResponse("list answer's items is not an array", 200)
            self._seen_items = True
            self._state = _ITEM
            return end + 1
        parsed = _parse(buf, end, final)
        if parsed is None:
            return None
        value, end = parsed
        if key == "metadata" and isinstance(value, dict):
            rv = value.get("resourceVersion")
            if isinstance(rv, str) and rv:
                self.resource_version = rv[:300]
        self._state = _AFTER_VALUE
        return end

    def _item(self, buf: str, pos: int, final: bool, out: list[dict[str, Any]]) -> int | None:
        parsed = _parse(buf, pos, final)
        if parsed is None:
            return None
        item, end = parsed
        if isinstance(item, dict):  # anything else cannot be an object: skipped
            out.append(item)
            self.items += 1
        self._state = _AFTER_ITEM
        return end


def _skip_ws(buf: str, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in _WS:
        pos += 1
    return pos


def _parse(buf: str, pos: int, final: bool) -> tuple[Any, int] | None:
    """One JSON value at ``pos``, and where it ends; None if its text is not all in.

    A value cut short and a malformed one look alike until the answer ends; a
    number is complete only once something follows it.
    """
    try:
        value, end = _DECODER.raw_decode(buf, pos)
    except RecursionError as e:
        raise ApiBadResponse("list answer is nested too deeply", 200) from e
    except ValueError as e:
        if final:
            raise ApiBadResponse(f"list answer is not JSON: {e}", 200) from e
        return None
    if end >= len(buf) and not final and not isinstance(value, str | dict | list):
        return None
    return value, end


class Listing:
    """A list answer being read: iterate for its items (each a parsed object);
    ``resource_version`` once they are all read. The iteration raises ApiError
    (from ``chunks``, or ApiBadResponse when the answer is not a whole list),
    always before it ends, so a consumer that applies what it read only at the
    end never applies a partial list."""

    def __init__(self, chunks: Iterable[bytes], max_item: int,
                 need_resource_version: bool = True) -> None:
        self._chunks = chunks
        self._decoder = ListDecoder(max_item, need_resource_version)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for data in self._chunks:
            yield from self._decoder.feed(data)
        yield from self._decoder.close()

    @property
    def resource_version(self) -> str:
        rv = self._decoder.resource_version
        if rv is None:
            raise ApiBadResponse("list answer has no resourceVersion", 200)
        return rv

    @property
    def items(self) -> int:
        return self._decoder.items
