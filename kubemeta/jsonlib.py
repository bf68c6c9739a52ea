"""JSON codec: orjson when installed, the stdlib otherwise.

Both codecs produce compact UTF-8 bytes and raise ValueError on bad input, so
callers never care which one is active.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple


class Codec(NamedTuple):
    name: str
    loads: Callable[[bytes], Any]
    dumps: Callable[[Any], bytes]


def _std_loads(data: bytes) -> Any:
    # json.loads accepts bytes but decodes with surrogatepass-like leniency on
    # some inputs; decode strictly first so both codecs reject the same bytes.
    return json.loads(data.decode("utf-8"))


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


STDLIB = Codec("json", _std_loads, _std_dumps)


def _orjson_codec() -> Codec | None:
    try:
        import orjson
    except ImportError:
        return None
    return Codec("orjson", orjson.loads, orjson.dumps)


ORJSON = _orjson_codec()
ACTIVE: Codec = ORJSON or STDLIB

loads = ACTIVE.loads
dumps = ACTIVE.dumps
