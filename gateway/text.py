"""Splitting long text for channels with a length limit.

Chunks break after whitespace where possible, never inside a grapheme cluster (an emoji with
its modifiers stays whole) and never inside a word or URL unless it alone exceeds the limit.
`"".join(split_text(t, n)) == t` always holds.
"""

from __future__ import annotations

from collections.abc import Callable

import regex

_TOKENS = regex.compile(r"\S+\s*|\s+")
_GRAPHEMES = regex.compile(r"\X")


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    if limit < 1:
        raise ValueError("limit must be positive")
    if measure(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for token in _TOKENS.findall(text):
        if measure(current + token) <= limit:
            current += token
            continue
        if current:
            chunks.append(current)
            current = ""
        if measure(token) <= limit:
            current = token
            continue
        for grapheme in _GRAPHEMES.findall(token):  # a word longer than the limit
            if current and measure(current + grapheme) > limit:
                chunks.append(current)
                current = ""
            current += grapheme
    if current:
        chunks.append(current)
    return chunks
