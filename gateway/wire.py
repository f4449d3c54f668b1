"""JSON on the wire: one encoder for every request body we send and every size we measure.

orjson writes compact UTF-8 JSON with non-ASCII characters kept, the same bytes as
`json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()` for the data we send
(strings, ints, bools, lists, dicts), several times faster. Measuring a request with
`dumps` (Viber's 30 KB limit) therefore measures exactly what the transport sends.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSON_CONTENT_TYPE = "application/json"


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """JSON read at orjson's speed, with the standard library's leniency where orjson refuses:
    a lone surrogate (an emoji cut in half by a sender) or NaN still reads, and the error of a
    body that is not JSON at all is the standard library's. orjson reads integers of up to 64
    bits exactly (Viber's message_token, the longest provider number, is one); wider ones it
    reads as floats, which no provider sends. JSON nested deeper than about 1,000 levels is
    a ValueError like any other malformed JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:  # nested deeper than either parser goes: not a payload we read
            raise ValueError("JSON nested too deeply") from None


def size(value: Any) -> int:
    """Bytes of `value` as the transport sends it."""
    return len(orjson.dumps(value))
