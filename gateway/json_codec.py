"""JSON on the wire: one encoder for every request body we send and every size we measure.

orjson writes compact UTF-8 JSON with non-ASCII characters kept, the same bytes as
`json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()` for the data we send
(strings, ints, bools, lists, dicts), several times faster. Measuring a request with
`dumps` (Viber's 30 KB limit) therefore measures exactly what the transport sends.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson

JSON_CONTENT_TYPE = "application/json"

T = TypeVar("T")


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
        return _lenient_loads(data)


def _lenient_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data, parse_int=_integer)
    except RecursionError:  # nested deeper than either parser goes: not a payload we read
        raise ValueError("nested too deeply") from None


def _integer(text: str) -> int | float:
    """An integer as orjson reads it: exact up to 64 bits, wider as a float (a huge one as
    inf), so that reading one from a body orjson refused for another reason (a NaN, a lone
    surrogate) gives the same value, and `float()` of it cannot overflow."""
    if len(text) <= 20:  # "-9223372036854775808", "18446744073709551615"
        value = int(text)
        if -(2**63) <= value < 2**64:
            return value
    return float(text)


def loads_bounded(data: bytes, max_depth: int) -> Any:
    """`loads` for what a sender wrote (a webhook body): containers nested more than
    `max_depth` deep are a ValueError, and every lone surrogate becomes U+FFFD, so whatever is
    read from it can be encoded as UTF-8 again. orjson refuses lone surrogates, so only what
    the lenient reader read is looked through: nearly every body costs two byte counts more."""
    try:
        value = orjson.loads(data)
        lenient = False
    except orjson.JSONDecodeError:
        value, lenient = _lenient_loads(data), True
    if nested_deeper_than(data, value, max_depth):
        raise ValueError(f"nested too deeply (over {max_depth} levels)")
    return without_lone_surrogates(value) if lenient else value


def nested_deeper_than(body: bytes, value: Any, limit: int) -> bool:
    """Whether the JSON `value` (read from `body`) nests containers more than `limit` deep.

    A body with no more brackets than `limit` cannot, which answers for nearly every webhook
    with two byte counts; otherwise the value is walked, without recursion (a deep value would
    exhaust the stack), and the walk stops at the first node past the limit."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, depth + 1) for child in children)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: T) -> T:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD, as a
    UTF-8 decoder does with bytes it cannot read: the text around it stays whole, and every
    string can be encoded again. A valid pair was joined by the reader already, so whatever
    surrogate is left is alone. Recursive: bound the value's depth first."""
    repaired: Any = value
    if isinstance(value, str):
        repaired = _SURROGATE.sub("\ufffd", value)
    elif isinstance(value, dict):
        repaired = {
            without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()
        }
    elif isinstance(value, list):
        repaired = [without_lone_surrogates(item) for item in value]
    return repaired  # type: ignore[no-any-return]  # of the same JSON type as `value`


def size(value: Any) -> int:
    """Bytes of `value` as the transport sends it."""
    return len(orjson.dumps(value))
