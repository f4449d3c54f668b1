"""SMS segment counting: GSM-7 septets with the extension table, UCS-2 in UTF-16 code units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    LIMITS,
    encoding_of,
    segments,
    units,
)

GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENDED), max_size=700)
# Mostly GSM, with BMP non-GSM characters (curly quotes, Cyrillic) and astral emoji mixed in.
ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENDED)),
        st.sampled_from("\u2019\u201c\u201d\u2014жЖ中文ç"),
        st.sampled_from(["😀", "🍽", "👍", "𝄞"]),
    ),
    max_size=500,
)


EXAMPLES = {
    "empty": ("", "GSM-7", 1),
    "160_gsm_is_one": ("a" * 160, "GSM-7", 1),
    "161_gsm_is_two": ("a" * 161, "GSM-7", 2),
    "306_gsm_is_two": ("a" * 306, "GSM-7", 2),
    "307_gsm_is_three": ("a" * 307, "GSM-7", 3),
    "extension_chars_cost_two_septets": ("€" * 80, "GSM-7", 1),
    "81_euros_are_162_septets": ("€" * 81, "GSM-7", 2),
    "escape_pair_never_split": ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
    "accent_outside_gsm_makes_it_ucs2": ("Ça coûte 5€", "UCS-2", 1),
    "gsm_specials_stay_gsm": ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", "GSM-7", 1),
    "70_ucs2_is_one": ("ж" * 70, "UCS-2", 1),
    "71_ucs2_is_two": ("ж" * 71, "UCS-2", 2),
    "35_emoji_are_70_units": ("😀" * 35, "UCS-2", 1),
    "36_emoji_are_two": ("😀" * 36, "UCS-2", 2),
    "surrogate_pair_never_split": ("ж" * 66 + "😀" + "ж" * 66, "UCS-2", 3),
    "one_curly_quote_makes_it_ucs2": ("It\u2019s " + "a" * 70, "UCS-2", 2),
}


@pytest.mark.parametrize(("text", "encoding", "count"), EXAMPLES.values(), ids=EXAMPLES.keys())
def test_examples(text: str, encoding: str, count: int) -> None:
    result = segments(text)
    assert (result.encoding, result.count) == (encoding, count)


def test_describe() -> None:
    assert segments("hi").describe() == "1 SMS segment (GSM-7)"
    assert segments("a" * 200).describe() == "2 SMS segments (GSM-7)"
    assert segments("👋" * 40).describe() == "2 SMS segments (UCS-2)"


def test_units_count_utf16_code_units_and_septets() -> None:
    assert units("a€") == 3  # GSM-7: € is ESC + e
    assert units("a😀") == 3  # UCS-2: the emoji is a surrogate pair
    assert units("a€😀") == 4  # UCS-2 now: € is one code unit


@given(ANY_TEXT)
def test_parts_rebuild_the_text_and_fit(text: str) -> None:
    result = segments(text)
    assert "".join(result.parts) == text
    single, per_part = LIMITS[result.encoding]
    assert result.units == units(text, result.encoding)
    if result.count == 1:
        assert result.units <= single
    else:
        assert result.units > single
        for part in result.parts:
            assert 0 < units(part, result.encoding) <= per_part
        # A part ends only when the next character does not fit: packing is greedy.
        for part, following in zip(result.parts, result.parts[1:], strict=False):
            room = per_part - units(part, result.encoding)
            assert units(following[0], result.encoding) > room


@given(GSM_TEXT)
def test_gsm_text_is_gsm7(text: str) -> None:
    assert encoding_of(text) == "GSM-7"
    result = segments(text)
    septets = len(text) + sum(c in GSM7_EXTENDED for c in text)
    assert result.units == septets
    if septets > 160:
        assert result.count >= -(-septets // 153)


@given(ANY_TEXT)
def test_ucs2_counts_utf16_and_keeps_surrogate_pairs_whole(text: str) -> None:
    result = segments(text)
    if result.encoding == "GSM-7":
        return
    assert result.units == len(text.encode("utf-16-le")) // 2
    for part in result.parts:
        # A part's UTF-16 form is its own code units: no surrogate pair straddles two parts.
        assert len(part.encode("utf-16-le")) // 2 == units(part, "UCS-2")
    if result.count > 1:
        assert result.count >= -(-result.units // 67)


@given(ANY_TEXT, st.sampled_from(["a", "€", "ж", "😀"]))
def test_adding_a_character_never_lowers_the_count(text: str, extra: str) -> None:
    assert segments(text + extra).count >= segments(text).count


@given(ANY_TEXT | GSM_TEXT | st.text(max_size=50) | st.text(st.characters(max_codepoint=127)))
def test_encoding_and_septets_follow_the_alphabet_tables(text: str) -> None:
    gsm = set(text) <= GSM7_BASIC | GSM7_EXTENDED
    assert encoding_of(text) == ("GSM-7" if gsm else "UCS-2")
    if gsm:  # each extension character costs its escape septet too
        assert units(text) == len(text) + sum(c in GSM7_EXTENDED for c in text)
