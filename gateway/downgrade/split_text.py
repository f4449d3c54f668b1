"""Splitting long text for channels with a length limit.

Chunks break after whitespace where possible, never inside a grapheme cluster (an emoji with
its modifiers, a letter with its combining marks) unless that one cluster is longer than the
limit, and never inside a URL or word unless it alone exceeds the limit. `"".join(split_text(t, n)) == t` always holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import regex

_GRAPHEMES = regex.compile(r"\X")
# `re`, not `regex`: its \s agrees with str.isspace(), which decides where words end.
_URL = re.compile(r"(https?://\S+)")


# ASCII has no combining marks: there, a word is a plain regex match (much faster).
_ASCII_WORDS = re.compile(r"\S+\s*|\s+")


def _words(text: str) -> Iterator[str]:
    """Words with their trailing whitespace, built from whole grapheme clusters.

    Clusters, not characters: a space followed by a combining mark is one cluster, and a
    character-level split would cut it in two.
    """
    if text.isascii():
        yield from _ASCII_WORDS.findall(text)
        return
    word, in_space = "", False
    for cluster in _GRAPHEMES.findall(text):
        space = cluster.isspace()
        if word and in_space and not space:
            yield word
            word = ""
        word += cluster
        in_space = space
    if word:
        yield word


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Chunks of at most `limit` (as counted by `measure`, which must be additive: the size of
    a concatenation is the sum of the sizes, like characters or UTF-16 code units)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    if measure(text) <= limit:
        return [text]
    chunks: list[str] = []
    parts: list[str] = []  # the chunk being built, joined once when it is full
    size = 0

    def flush() -> None:
        nonlocal size
        if parts:
            chunks.append("".join(parts))
            parts.clear()
            size = 0

    def add(piece: str) -> None:
        nonlocal size
        piece_size = measure(piece)
        if size + piece_size > limit:
            flush()
        if piece_size <= limit:
            parts.append(piece)
            size += piece_size
            return
        for cluster in _GRAPHEMES.findall(piece):  # longer than a whole chunk: no choice
            cluster_size = measure(cluster)
            if parts and size + cluster_size > limit:
                flush()
            if cluster_size > limit:
                # A degenerate cluster (hundreds of combining marks) longer than a chunk:
                # only here is a cluster cut, by code point, so no chunk exceeds the limit.
                for char in cluster:
                    char_size = measure(char)
                    if parts and size + char_size > limit:
                        flush()
                    parts.append(char)
                    size += char_size
                continue
            parts.append(cluster)
            size += cluster_size

    for word in _words(text):
        if measure(word) <= limit:
            add(word)
            continue
        # A word longer than the limit: cut around any URL in it before cutting the URL itself.
        for piece in _URL.split(word):
            if piece:
                add(piece)
    flush()
    return chunks
