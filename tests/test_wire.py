"""The wire encoder sends exactly the compact UTF-8 JSON adapters measure (Viber's 30 KB)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import wire

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
    assert wire.dumps(value) == expected
    assert wire.size(value) == len(expected)
    assert wire.loads(wire.dumps(value)) == value


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    assert wire.dumps({"text": "café 🍕"}) == '{"text":"café 🍕"}'.encode()


def test_reading_accepts_what_providers_send_that_orjson_refuses() -> None:
    # An emoji cut in half leaves a lone surrogate escape; the standard library reads it.
    assert wire.loads(b'{"text": "cut \\ud83d"}') == {"text": "cut \ud83d"}
    assert wire.loads(b'{"a": NaN}')["a"] != wire.loads(b'{"a": NaN}')["a"]  # NaN


def test_64_bit_integers_read_exactly() -> None:
    # Viber's message_token is a 64-bit integer; every digit must survive.
    for number in (2**53 + 1, 2**63 - 1, 2**64 - 1):
        assert wire.loads(f'{{"message_token": {number}}}'.encode()) == {"message_token": number}


def test_not_json_raises_the_standard_error() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        wire.loads(b'{"object": ')
