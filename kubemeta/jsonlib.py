"""JSON codec: orjson when installed, the stdlib otherwise.

Both codecs produce compact UTF-8 bytes and raise ValueError on bad input, so
callers never care which one is active. The stdlib's is held to orjson's idea
of JSON: no NaN, no Infinity (nor a number too large for a double), no lone
surrogate, which would otherwise reach a reply that is then not JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple


class Codec(NamedTuple):
    name: str
    loads: Callable[[bytes], Any]
    dumps: Callable[[Any], bytes]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is too large for a double")
    return value


# A \u escape of a surrogate: only then can a string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _lone_surrogate(obj: Any) -> bool:
    if isinstance(obj, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in obj)
    if isinstance(obj, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_lone_surrogate(v) for v in obj)
    return False


def _std_loads(data: bytes) -> Any:
    # json.loads accepts bytes but decodes with surrogatepass-like leniency on
    # some inputs; decode strictly first so both codecs reject the same bytes.
    obj = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    # A pair decodes to one character; what is left in the surrogate range is lone.
    if _SURROGATE_ESCAPE.search(data) and _lone_surrogate(obj):
        raise ValueError("a lone surrogate is not text")
    return obj


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


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
