"""Property tests for splitting long text: it rejoins exactly and never cuts what must stay whole."""

from __future__ import annotations

import re

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.downgrade.split_text import split_text

# Text that stresses the rules: combining marks, ZWJ emoji sequences, skin tones, flags, CJK,
# CRLF (one grapheme), plain words and URLs.
PIECES = st.sampled_from(
    [
        "a",
        "word",
        " ",
        "  ",
        "\n",
        "\r\n",
        "e\u0301",  # e + combining acute
        "\u0915\u094d\u0937",  # Devanagari conjunct
        "👍🏽",
        "👨\u200d👩\u200d👧\u200d👦",
        "🇯🇵",
        "漢字",
        "https://example.com/orders/12345?track=yes",
        "http://x.io/a",
    ]
)
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=60).map("".join)
URL = re.compile(r"https?://\S+")  # re: \s agrees with str.isspace()


def graphemes(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def grapheme_boundaries(text: str) -> set[int]:
    positions, at = {0}, 0
    for cluster in graphemes(text):
        at += len(cluster)
        positions.add(at)
    return positions


@settings(max_examples=400, deadline=None)
@given(TEXT, st.integers(min_value=1, max_value=80))
def test_split_rejoins_and_respects_graphemes_and_urls(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert "".join(chunks) == text
    assert all(chunks) or chunks == [""]
    boundaries = grapheme_boundaries(text)
    cut, at = [], 0
    for chunk in chunks[:-1]:
        at += len(chunk)
        cut.append(at)
    # Never inside a grapheme cluster, unless that cluster alone is longer than the limit.
    oversized = set()
    at = 0
    for cluster in graphemes(text):
        if len(cluster) > limit:
            oversized |= set(range(at + 1, at + len(cluster)))
        at += len(cluster)
    assert set(cut) <= boundaries | oversized
    # Always within the limit.
    assert all(len(chunk) <= limit for chunk in chunks)
    # Never inside a URL that would fit in one chunk.
    for match in URL.finditer(text):
        if len(match.group()) <= limit:
            assert not any(match.start() < c < match.end() for c in cut), (match.group(), cut)


@settings(max_examples=200, deadline=None)
@given(TEXT, st.sampled_from([160, 1600, 2000, 4096, 5000, 7000]))
def test_split_at_channel_limits(text: str, limit: int) -> None:
    long_text = text * (limit // max(len(text), 1) + 2) if text else text
    chunks = split_text(long_text, limit)
    assert "".join(chunks) == long_text
    assert all(len(c) <= limit for c in chunks)


def test_split_prefers_word_boundaries() -> None:
    assert split_text("hello world again", 12) == ["hello world ", "again"]


def test_split_custom_measure_counts_utf16_units() -> None:
    # Measures other than len() (e.g. UTF-16 code units for UCS-2 SMS) bound each chunk.
    def utf16(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    chunks = split_text("😀" * 10, 4, measure=utf16)
    assert chunks == ["😀😀"] * 5


def test_a_cluster_longer_than_the_limit_is_cut_rather_than_sent_too_long() -> None:
    # Skin-tone modifiers after one another form a single (degenerate) grapheme cluster.
    text = "🏻" * 200
    chunks = split_text(text, 160)
    assert "".join(chunks) == text
    assert [len(c) for c in chunks] == [160, 40]
