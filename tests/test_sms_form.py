"""Twilio's form body is read by a direct split of its pairs (`adapters.sms.read_form`), faster
than urllib's parse_qs; it must read every body exactly as parse_qs(keep_blank_values=True,
strict_parsing=True) does, refuse the same bodies, and keep a repeated name's every value."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import PayloadError
from adapters.sms import read_form

# The characters that matter to a form reader, and some that do not.
_TOKENS = [*"ab=&+;%2B41e9zé ", "%2B", "%41", "%e9", "%C3%A9"]
_FORM_TEXT = st.lists(st.sampled_from(_TOKENS), max_size=16).map("".join)


def _parse_qs(text: str) -> dict[str, list[str]] | str:
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as exc:
        return f"malformed form body: {exc}"


def _read_form(text: str) -> dict[str, list[str]] | str:
    try:
        return dict(read_form(text.encode()))
    except PayloadError as exc:
        return str(exc)


@given(_FORM_TEXT)
def test_reads_every_body_as_parse_qs_does(text: str) -> None:
    assert _read_form(text) == _parse_qs(text)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", {}),
        (
            "From=%2B14155550100&Body=Hello+there",
            {"From": ["+14155550100"], "Body": ["Hello there"]},
        ),
        ("Body=&NumMedia=0", {"Body": [""], "NumMedia": ["0"]}),
        ("From=a&From=b", {"From": ["a", "b"]}),  # repeated: the model names it
        ("Body=caf%C3%A9", {"Body": ["café"]}),
        ("Body=%e9", {"Body": ["\ufffd"]}),  # a byte that is not UTF-8, as parse_qs reads it
    ],
)
def test_reads_documented_forms(body: str, expected: dict[str, list[str]]) -> None:
    assert dict(read_form(body.encode())) == expected


@pytest.mark.parametrize("body", ["MessageSid", "a=1&&b=2", "a=1&"])
def test_refuses_a_pair_without_equals(body: str) -> None:
    with pytest.raises(PayloadError, match="malformed form body: bad query field"):
        read_form(body.encode())
