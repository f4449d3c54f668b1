"""The communities' pure rules: keywords, the rate-limit bucket, the gate, the notice throttle."""

from __future__ import annotations

import pytest

from gateway.router.communities import (
    Bucket,
    KeywordRow,
    candidate_phrases,
    gate,
    given_name,
    keyword_hits,
    should_tell,
    verdict_of,
)

ROWS = [
    KeywordRow("JOIN SUSHI", "sushi", "join", "en"),
    KeywordRow("NAME", "sushi", "name", "en"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JOIN SUSHI", [("join", "")]),
        ("  join   sushi ", [("join", "")]),
        ("join sushi please", []),
        ("NAME  Kenji Tanaka", [("name", "Kenji Tanaka")]),
        ("name", []),
        ("names are hard", []),
    ],
)
def test_keywords(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(h.action, h.argument) for h in keyword_hits(text, ROWS)] == expected


def test_candidate_phrases_and_long_texts() -> None:
    assert candidate_phrases(" name  Kenji T ") == ["NAME KENJI T", "NAME", "NAME KENJI"]
    assert candidate_phrases("x" * 500) == []


@pytest.mark.parametrize(
    ("muted_until", "tokens", "moderated", "expected"),
    [
        (200.0, 3.0, False, "muted"),
        (50.0, 3.0, False, "relay"),
        (None, 0.0, False, "rate_limited"),
        (None, 1.0, True, "moderate"),
    ],
)
def test_gate(muted_until: float | None, tokens: float, moderated: bool, expected: str) -> None:
    decision, _ = gate(
        muted_until=muted_until,
        bucket=Bucket(tokens, 100.0),
        per_minute=3,
        moderated=moderated,
        now=100.0,
    )
    assert decision == expected


def test_the_bucket_refills_evenly() -> None:
    decision, after = gate(
        muted_until=None, bucket=Bucket(0.0, 0.0), per_minute=3, moderated=False, now=20.0
    )
    assert decision == "relay" and after.tokens == pytest.approx(0.0)


def test_given_names_are_drawn_not_derived_and_avoid_taken_ones() -> None:
    draws = iter([821, 821, 3821])
    assert given_name({"member 1821"}, lambda _n: next(draws)) == "Member 4821"


def test_notices_are_throttled_and_verdicts_read() -> None:
    assert should_tell(None, 10.0) and not should_tell(0.0, 59.0) and should_tell(0.0, 60.0)
    assert verdict_of({"decision": "hold", "reason": "check"}) == ("hold", "check")
    assert verdict_of({"decision": "maybe"}) is None and verdict_of([]) is None
