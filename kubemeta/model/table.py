"""The rsyslog lookup table of table mode, pure.

rsyslog's ``lookup_table`` maps a string to a string. kubemeta's table maps a
container's log file name (what imfile puts at ``$!metadata!filename``) to the
``$!`` members mmexternal mode would reply for that file's lines, serialized:
``{"kubernetes":{...},"docker":{...}}``. The shipped snippets ``parse_json``
that value into ``$!``, so a hit gives the very bytes a reply would.

Entries are sorted by file name: the same knowledge gives the same bytes, and a
table whose bytes did not change is neither written nor reloaded. A reply that
cannot be a value (only a corrupt view could give one) is left out alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from kubemeta.errors import KubemetaError

_HEAD = b'{"version":1,"nomatch":"","type":"string","table":['
_TAIL = b"]}\n"
_REPLY_HEAD = b'{"$!":'
_REPLY_TAIL = b"}\n"


class TableError(KubemetaError):
    """A reply that cannot be a table value."""


class Table(NamedTuple):
    data: bytes
    entries: int
    left_out: int  # entries past the size bound: their lines go to the helper


@dataclass
class Counts:
    entries: int = 0
    left_out: int = 0  # past the size bound, or not a reply: left to the helper


def value_of(reply: bytes) -> bytes:
    """``{"$!":{...}}\\n`` (an mmexternal reply) -> ``{...}``, the members' object."""
    if not (reply.startswith(_REPLY_HEAD) and reply.endswith(_REPLY_TAIL)) \
            or reply.count(b"\n") != 1:
        raise TableError(f"not a one-line reply: {reply[:60]!r}")
    return reply[len(_REPLY_HEAD):-len(_REPLY_TAIL)]


def chunks(entries: Iterable[tuple[str, bytes]], max_bytes: int,
           dumps: Callable[[Any], bytes], counts: Counts) -> Iterator[bytes]:
    """The table's file, piece by piece, for ``(file name, reply)`` pairs given in
    file-name order, at most ``max_bytes`` long: a node's table is never whole in
    memory."""
    yield _HEAD
    size = len(_HEAD) + len(_TAIL)
    for name, reply in entries:
        try:
            item = (b'{"index":' + dumps(name) + b',"value":'
                    + dumps(value_of(reply).decode("utf-8")) + b"}")
        except (TableError, UnicodeDecodeError):
            counts.left_out += 1
            continue
        if size + len(item) + 1 > max_bytes:
            counts.left_out += 1
            continue
        if counts.entries:
            yield b","
            size += 1
        yield item
        size += len(item)
        counts.entries += 1
    yield _TAIL


def encode(entries: Iterable[tuple[str, bytes]], max_bytes: int,
           dumps: Callable[[Any], bytes]) -> Table:
    """The whole table at once, its entries sorted (for tests and small tables)."""
    counts = Counts()
    data = b"".join(chunks(sorted(entries), max_bytes, dumps, counts))
    return Table(data, counts.entries, counts.left_out)


EMPTY = _HEAD + _TAIL  # what the package installs: every line goes to the helper
