"""The wire encoder sends exactly the compact UTF-8 JSON adapters measure (Viber's 30 KB)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import json_codec

# What request bodies hold: strings (any text, emoji and control characters included),
# ints, bools, None, lists and objects.
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_wire_bytes_equal_the_standard_compact_encoding(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert json_codec.dumps(value) == expected
    assert json_codec.size(value) == len(expected)
    assert json_codec.loads(json_codec.dumps(value)) == value


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    assert json_codec.dumps({"text": "café 🍕"}) == '{"text":"café 🍕"}'.encode()


def test_reading_accepts_what_providers_send_that_orjson_refuses() -> None:
    # An emoji cut in half leaves a lone surrogate escape; the standard library reads it.
    assert json_codec.loads(b'{"text": "cut \\ud83d"}') == {"text": "cut \ud83d"}
    assert json_codec.loads(b'{"a": NaN}')["a"] != json_codec.loads(b'{"a": NaN}')["a"]  # NaN


def test_64_bit_integers_read_exactly() -> None:
    # Viber's message_token is a 64-bit integer; every digit must survive.
    for number in (2**53 + 1, 2**63 - 1, 2**64 - 1):
        assert json_codec.loads(f'{{"message_token": {number}}}'.encode()) == {
            "message_token": number
        }
        # also beside what only the lenient reader reads (orjson refuses NaN)
        assert json_codec.loads(f"[NaN, {number}]".encode())[1] == number


def test_wider_integers_read_as_floats_whichever_reader_reads_them() -> None:
    """A 400-digit integer became a Python int where orjson gave up: float() of it raised
    OverflowError deep in an adapter (Viber's location)."""
    for body in (b"[18446744073709551616]", b"[18446744073709551616, NaN]"):
        assert json_codec.loads(body)[0] == float(2**64)
    assert json_codec.loads(b"[1" + b"0" * 400 + b", NaN]")[0] == float("inf")
    assert json_codec.loads(b"[-1" + b"0" * 5000 + b", NaN]")[0] == float("-inf")  # no digit limit


def test_not_json_raises_the_standard_error() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        json_codec.loads(b'{"object": ')


@pytest.mark.parametrize(
    ("body", "limit", "deeper"),
    [
        (b'{"a": [1, {"b": 2}]}', 3, False),  # three levels: the object, the list, the object
        (b'{"a": [1, {"b": 2}]}', 2, True),
        (b'{"a": "[[[[[[[[["}', 2, False),  # brackets in a string are no nesting
        (b"[" * 100_000 + b"]" * 100_000, 64, True),  # counted without recursing
    ],
)
def test_nesting_is_measured_without_recursion(body: bytes, limit: int, deeper: bool) -> None:
    value = json.loads(body) if len(body) < 1000 else _nested_lists(100_000)
    assert json_codec.nested_deeper_than(body, value, limit) is deeper


def _nested_lists(depth: int) -> Any:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_lone_surrogates_become_replacement_characters_and_pairs_stay() -> None:
    body = b'{"k\\udc00": ["cut \\ud83d", "whole \\ud83d\\ude00", "\\udfff\\ud800", 1]}'
    value = json_codec.loads_bounded(body, 64)
    assert value == {"k\ufffd": ["cut \ufffd", "whole 😀", "\ufffd\ufffd", 1]}
    assert json_codec.loads_bounded(b'["\xed\xa0\x80"]', 64) == ["\ufffd"]  # as raw bytes too
    assert json_codec.loads(body)["k\udc00"][0] == "cut \ud83d"  # plain `loads` keeps them


def test_bounded_reading_refuses_what_nests_past_its_limit() -> None:
    assert json_codec.loads_bounded(b"[" * 64 + b"]" * 64, 64) == _nested_lists(64)
    for body in (b"[" * 65 + b"]" * 65, b"[" * 2000 + b"]" * 2000):
        with pytest.raises(ValueError, match="nested too deeply"):
            json_codec.loads_bounded(body, 64)
