"""Where a broadcast reaches a member, or why it skips them (gateway/router/broadcasts.py)."""

from __future__ import annotations

import pytest

from gateway.router.broadcasts import Candidate, ChannelRules, Reach, Skip, reach

NOW = 1_800_000_000.0
HOUR = 3600.0
CHANNELS = {
    "wa": ChannelRules(24, templates=True),
    "fb": ChannelRules(24, templates=False),
    "sms": ChannelRules(None, templates=False),
    "line": ChannelRules(None, templates=False),
}


def c(channel: str, wrote_hours_ago: float | None = None, opted_out: bool = False) -> Candidate:
    at = None if wrote_hours_ago is None else NOW - wrote_hours_ago * HOUR
    return Candidate(channel, f"{channel}-id", at, opted_out)


CASES = [
    ("one open window", [c("wa", 1)], {"wa"}, Reach("wa", "wa-id", False)),
    ("the last they wrote from", [c("sms", 5), c("wa", 1)], set(), Reach("wa", "wa-id", False)),
    (
        "no window beats a closed one",
        [c("wa", 30), c("sms")],
        {"wa"},
        Reach("sms", "sms-id", False),
    ),
    ("first linked when none wrote", [c("line"), c("sms")], set(), Reach("line", "line-id", False)),
    ("the template past the window", [c("wa", 30)], {"wa"}, Reach("wa", "wa-id", True)),
    ("closed, no template given", [c("wa", 30)], set(), Skip("window_closed")),
    ("closed, channel has none", [c("fb", 30)], {"fb"}, Skip("window_closed")),
    ("STOP anywhere wins", [c("wa", 1), c("sms", opted_out=True)], {"wa"}, Skip("opted_out")),
    (
        "no configured channel",
        [Candidate("tg", "1", None, False)],
        set(),
        Skip("no_usable_identity"),
    ),
    ("no identity at all", [], set(), Skip("no_usable_identity")),
]


@pytest.mark.parametrize(
    ("label", "candidates", "templated", "expected"), CASES, ids=[x[0] for x in CASES]
)
def test_reach(
    label: str, candidates: list[Candidate], templated: set[str], expected: object
) -> None:
    assert reach(candidates, CHANNELS, frozenset(templated), NOW) == expected
