"""LINE's clip: the ASCII fast path cuts exactly where the general (grapheme-aware) path does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.line.render import clip, utf16_len
from gateway.downgrade.split_text import split_text

ASCII = st.text(st.sampled_from("ab xyz\n\t.,"), min_size=0, max_size=120)


@settings(max_examples=500, deadline=None)
@given(ASCII, st.integers(min_value=2, max_value=60))
def test_ascii_fast_path_matches_the_general_split(text: str, limit: int) -> None:
    expected = (
        text
        if utf16_len(text) <= limit
        else split_text(text, limit - 1, utf16_len)[0].rstrip() + "…"
    )
    assert clip(text, limit) == expected
    assert utf16_len(clip(text, limit)) <= limit
